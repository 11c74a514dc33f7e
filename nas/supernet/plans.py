"""Per-option plans: the planner never sees a Choice, so every candidate is planned inside an ordinary
architecture — the space with its choices set to a base assignment and the candidate's own picks — and
read back by its unit path. Planning is pure Python and cached per assignment."""
from __future__ import annotations

from typing import Mapping

from nas.dsl.nodes import Choice, Space
from nas.dsl.plan import Plan, Unit, plan
from nas.dsl.resolve import substitute


class OptionPlanner:
    def __init__(self, space: Space, base: Mapping[str, str]):
        self.space = space
        self.choices = space.choices()
        self.base = dict(base)
        self._cache: dict[tuple, Plan] = {}

    def plan(self, picks: Mapping[str, str] | None = None) -> Plan:
        keys = dict(self.base, **(picks or {}))
        cache_key = tuple(sorted(keys.items()))
        if cache_key not in self._cache:
            self._cache[cache_key] = plan(substitute(self.space.doc, keys, self.choices))
        return self._cache[cache_key]

    def unit(self, path: str, picks: Mapping[str, str] | None = None) -> Unit:
        for unit in self.plan(picks).units():
            if unit.path == path:
                return unit
        raise KeyError(f"no unit {path} in the plan for {picks}")  # an internal error, not user input


def depth_choices(space: Space) -> dict[str, Choice]:
    """Row depth choices (`n: {choice: [...]}`), by name."""
    return {row["n"].name: row["n"] for row in space.doc.get("stages", []) if isinstance(row.get("n"), Choice)}


def deepest_base(space: Space) -> dict[str, str]:
    """First option of every choice, but the deepest option of depth choices, so every layer exists."""
    base = {name: c.keys[0] for name, c in space.choices().items()}
    for name, choice in depth_choices(space).items():
        base[name] = max(choice.keys, key=lambda k: choice.values[k])
    return base
