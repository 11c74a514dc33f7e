"""The ask/tell interface every multi-trial strategy implements, and what it is told.

A strategy proposes assignments with `space.walk` (inactive choices are never picked), numbers them 0, 1, …
in the order it proposes them, and learns from `tell`. Given its seed and the same sequence of ask/tell
calls it proposes the same architectures: the runner resumes a search by replaying its log of calls, so a
strategy keeps no state that this replay would not rebuild.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from nas.dsl.nodes import Space
from nas.recipe import STRATEGIES, Objective, strategy_info

STATUSES = ("ok", "failed", "rejected", "stopped")


class Exhausted(Exception):
    """The strategy has nothing left to propose (a grid that is done)."""


@dataclass
class Outcome:
    status: str  # ok | failed (raised or NaN) | rejected (broke a constraint, never trained) | stopped (ASHA)
    values: list[float] | None = None  # one per objective, in the recipe's order (None when failed)
    violations: list[float] = field(default_factory=list)  # one per constraint: ≤ 0 satisfied, > 0 broken
    trained: bool = True  # False for a repeated architecture told its first result: it used no budget

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")
        if self.values is not None and any(not math.isfinite(v) for v in self.values):
            self.status, self.values = "failed", None


class Strategy:
    """Base class: subclasses set OPTIONS (nas.recipe.Option per option) and implement `_propose`/`tell`."""

    OPTIONS: dict = {}
    max_objectives: int | None = 1

    def __init__(self, space: Space, objectives: Sequence[Objective], options: dict | None = None, seed: int = 0,
                 constraints: Sequence[Any] = (), **_: Any):
        self.space = space
        self.objectives = list(objectives)
        self.options = {k: o.default for k, o in self.OPTIONS.items()} | dict(options or {})
        self.seed = seed
        self.constraints = list(constraints)
        self.asked = 0

    def ask(self) -> tuple[int, dict[str, str]]:
        assignment = self._propose(self.asked)
        self.asked += 1
        return self.asked - 1, assignment

    def _propose(self, number: int) -> dict[str, str]:
        raise NotImplementedError

    def tell(self, number: int, outcome: Outcome) -> None:
        """Learn from a finished trial (default: nothing to learn)."""

    def score(self, outcome: Outcome) -> float | None:
        """The single objective as a number to maximize; None for a failed trial."""
        if outcome.values is None:
            return None
        sign = 1.0 if self.objectives[0].direction == "max" else -1.0
        return sign * outcome.values[0]

    def close(self) -> None:
        """Release what the strategy holds (an Optuna storage connection)."""


def make_strategy(name: str, space: Space, objectives: Sequence[Objective], options: dict | None = None,
                  seed: int = 0, **kwargs: Any) -> Strategy:
    if name not in STRATEGIES or name == "dnas":
        raise ValueError(f"not a multi-trial strategy: {name!r}")
    return strategy_info(name)(space, objectives, options, seed, **kwargs)
