"""Random search: each active choice uniformly at random (the baseline every other strategy must beat)."""
from __future__ import annotations

import random

from nas.recipe import Option
from nas.search.strategies.base import Strategy


class RandomSearch(Strategy):
    OPTIONS = {"dedupe": Option(True, bool, "true: never propose the same architecture twice (up to 100 tries)")}
    max_objectives = None  # it ignores the values; several objectives give a Pareto front in the results

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = random.Random(self.seed)
        self.seen: set[tuple] = set()

    def _propose(self, number: int) -> dict[str, str]:
        for _ in range(100 if self.options["dedupe"] else 1):
            picks = self.space.walk(lambda name, choice: self.rng.choice(choice.keys))
            key = tuple(sorted(picks.items()))
            if key not in self.seen:
                break
        self.seen.add(key)
        return picks
