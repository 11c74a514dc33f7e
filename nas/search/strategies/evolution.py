"""Regularized (aging) evolution, Real et al. 2019 (AmoebaNet), written out here.

The population holds the last `population` architectures that trained successfully, in the order their
results arrived. Until it is full, proposals are random. Then each proposal samples `sample` members at
random, takes the best of them (tournament) as the parent and mutates one active choice to a different
option; when a result arrives the child joins the population and the oldest member dies — regardless of
its accuracy, which is what "regularized" means: an architecture survives by producing good children.
Failed and rejected candidates never join the population (they were never trained models), so a broken
constraint costs the parent one offspring and nothing more.
"""
from __future__ import annotations

import random
from collections import deque

from nas.recipe import Option
from nas.search.strategies.base import Outcome, Strategy


class RegularizedEvolution(Strategy):
    OPTIONS = {
        "population": Option(16, int, "number of living architectures, ≥ 2", lambda v: v >= 2),
        "sample": Option(4, int, "tournament size, ≥ 1", lambda v: v >= 1),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = random.Random(self.seed)
        self.population: deque[tuple[dict[str, str], float]] = deque()
        self.proposed: dict[int, dict[str, str]] = {}
        self.initial = 0  # random proposals made so far

    def _propose(self, number: int) -> dict[str, str]:
        if len(self.population) < self.options["population"] and self.initial < self.options["population"] \
                or not self.population:
            self.initial += 1
            child = self.space.walk(lambda name, choice: self.rng.choice(choice.keys))
        else:
            k = min(self.options["sample"], len(self.population))
            contenders = self.rng.sample(list(self.population), k)
            parent = max(contenders, key=lambda member: member[1])[0]
            child = self.mutate(parent)
        self.proposed[number] = child
        return child

    def mutate(self, parent: dict[str, str]) -> dict[str, str]:
        """Change one active choice with more than one option; choices that the change makes active (a
        deeper depth pick) are picked at random, the rest are inherited."""
        choices = self.space.choices()
        mutable = [name for name in parent if len(choices[name]) > 1]
        if not mutable:
            return dict(parent)
        target = self.rng.choice(mutable)
        new = self.rng.choice([k for k in choices[target].keys if k != parent[target]])

        def decide(name, choice):
            if name == target:
                return new
            return parent[name] if name in parent else self.rng.choice(choice.keys)

        return self.space.walk(decide)

    def tell(self, number: int, outcome: Outcome) -> None:
        child = self.proposed.pop(number)
        fitness = self.score(outcome)
        if outcome.status in ("ok", "stopped") and fitness is not None:
            self.population.append((child, fitness))
            if len(self.population) > self.options["population"]:
                self.population.popleft()  # the oldest dies
