"""Search strategies: one small ask/tell interface over `space.choices()`, none of them importing Ray.

    strategy = make_strategy("evolution", space, objectives, options, seed=0)
    number, assignment = strategy.ask()          # assignment: {choice name: option key}, active choices only
    strategy.tell(number, Outcome("ok", [0.93]))  # or "failed", "rejected" (with violations), "stopped"
"""
from __future__ import annotations

from nas.search.strategies.base import Exhausted, Outcome, Strategy, make_strategy

__all__ = ["Exhausted", "Outcome", "Strategy", "make_strategy"]
