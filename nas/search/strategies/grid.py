"""Grid search: every architecture of a small space once, in order (a depth pick skips the dead layers)."""
from __future__ import annotations

import random

from nas.dsl.errors import SpecError
from nas.dsl.walk import enumerate_all
from nas.recipe import Option
from nas.search.strategies.base import Exhausted, Strategy


class GridSearch(Strategy):
    OPTIONS = {
        "max_size": Option(10_000, int, "the largest space a grid may cover", lambda v: v >= 1),
        "shuffle": Option(False, bool, "true: visit the grid in a seeded random order"),
    }
    max_objectives = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        size = self.space.size()
        if size > self.options["max_size"]:
            raise SpecError(f"a grid over space '{self.space.name}' would have {size:.3g} points, more than "
                            f"strategy.max_size {self.options['max_size']}", kwargs.get("where"),
                            "use random, evolution or tpe, or search a smaller space")
        self.points = list(enumerate_all(self.space))
        if self.options["shuffle"]:
            random.Random(self.seed).shuffle(self.points)

    def _propose(self, number: int) -> dict[str, str]:
        if number >= len(self.points):
            raise Exhausted(f"the grid's {len(self.points)} points are all proposed")
        return dict(self.points[number])
