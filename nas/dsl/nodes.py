"""Space and Arch: one grammar, the second without choices.

The data lives below, in nas.dsl.document (Choice, the normalizer, the normalized form); the behaviour in the
modules that read it (plan, resolve, walk, transform). This module sits on top of them all and delegates, so
the imports run one way. Pure data: no torch here.
"""
from __future__ import annotations

import copy
import random
from typing import Any, Mapping

from nas.dsl import transform
from nas.dsl.document import Choice, _Normalizer, option_key, walk_choices
from nas.dsl.errors import Location, SpecError
from nas.dsl.parse import PosDict
from nas.dsl.plan import Plan, plan
from nas.dsl.resolve import resolve_doc, space_size, substitute
from nas.dsl.walk import walk

__all__ = ["Arch", "Choice", "Space", "option_key", "walk_choices"]


class Space:
    """A search space: a normalized document whose values may be `Choice`s."""

    def __init__(self, normalized: dict, file: str = "<string>"):
        self.doc = normalized
        self.file = file
        self._choices: dict[str, Choice] = {c.name: c for c in walk_choices(normalized)}
        plan(self._representative())  # validation = planning a representative architecture

    @classmethod
    def from_data(cls, doc: PosDict, file: str = "<string>") -> "Space":
        if not isinstance(doc, dict) and getattr(doc, "where", None) is None:  # a bare scalar has no position
            raise SpecError("the top level must be a mapping", Location(file, 1, 1), "start with 'name: ...'")
        normalized = _Normalizer(doc).run()
        is_fixed = not any(True for _ in walk_choices(normalized))
        return (Arch if is_fixed else Space)(normalized, file)

    # -- the contract with strategies -----------------------------------------------------------
    @property
    def name(self) -> str:
        return self.doc["name"]

    @property
    def is_cell(self) -> bool:
        return "cells" in self.doc

    def choices(self) -> dict[str, Choice]:
        """Ordered mapping name -> Choice (iterate a Choice for its option keys)."""
        return dict(self._choices)

    def size(self) -> int:
        """Number of distinct architectures (a depth choice makes deeper layers' choices count only when used)."""
        return space_size(self)

    def sample(self, seed: int | random.Random | None = None) -> dict[str, str]:
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return {name: rng.choice(choice.keys) for name, choice in self._choices.items()}

    def walk(self, decide) -> dict[str, str]:
        """`decide(name, choice) -> option key` for each choice still active, in order (see nas.dsl.walk)."""
        return walk(self, decide)

    def resolve(self, assignment: Mapping[str, Any] | None = None) -> "Arch":
        return Arch(resolve_doc(self, assignment or {}), self.file)

    def _representative(self) -> dict:
        """A document with every choice at its first option (validates shapes for the structure)."""
        return substitute(self.doc, {n: c.keys[0] for n, c in self._choices.items()}, self._choices)

    # -- pure-data transforms (return new objects) -----------------------------------------------
    def with_classes(self, classes: int) -> "Space":
        return transform.with_classes(self, classes)

    def with_input(self, channels: int | None = None, size: int | None = None) -> "Space":
        return transform.with_input(self, channels=channels, size=size)

    def with_width(self, multiplier: float, divisor: int = 8) -> "Space":
        return transform.with_width(self, multiplier, divisor)

    def with_depth(self, multiplier: float) -> "Space":
        return transform.with_depth(self, multiplier)

    def require_fixed(self, hint: str = "resolve one first: space.resolve(space.sample(seed))") -> "Space":
        """Itself when it holds no choices (an architecture); else the one error every command gives."""
        if self._choices:
            name = self.name if self.name.isprintable() else repr(self.name)
            raise SpecError(f"'{name}' is a search space with {len(self._choices)} choices", self.file, hint)
        return self

    def copy_with(self, doc: dict) -> "Space":
        return type(self)(doc, self.file)

    def clone_doc(self) -> dict:
        return copy.deepcopy({k: v for k, v in self.doc.items() if k != "_doc"}) | {"_doc": self.doc.get("_doc")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, choices={len(self._choices)}, size={self.size():.3g})"


class Arch(Space):
    """A space with no choices: it builds, counts and exports on its own."""

    def __init__(self, normalized: dict, file: str = "<string>"):
        super().__init__(normalized, file)
        if self._choices:
            first = next(iter(self._choices.values()))
            raise SpecError(f"an architecture cannot hold choices ('{first.name}')", first.where,
                            "resolve the space first")

    def size(self) -> int:
        return 1

    def plan(self) -> Plan:
        return plan(self.doc)
