"""Conditional choices: walk a space's choices in order, skipping those an earlier pick made inactive.

Today the only condition is depth: a row `{n: {choice: [2, 3, 4]}, layers: [...]}` keeps its first n layers,
so the choices inside layer j (0-based) exist only when the depth pick is > j. `space.choices()` orders the
depth choice before its layers, so a walk meets the condition before the choices it gates. A define-by-run
sampler (Optuna) asks only for what `walk` asks, and never learns from a dead parameter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from nas.dsl.document import Choice, walk_choices
from nas.dsl.errors import SpecError

if TYPE_CHECKING:  # Space sits above this module and delegates to it
    from nas.dsl.nodes import Space

Decide = Callable[[str, Choice], str]


def gates(space: Space) -> dict[str, tuple[str, int]]:
    """choice name → (depth choice name, layer index): active only when that depth pick exceeds the index."""
    out: dict[str, tuple[str, int]] = {}
    for row in space.doc.get("stages", []):
        n = row.get("n")
        if not isinstance(n, Choice) or "layers" not in row:
            continue
        for j, layer in enumerate(row["layers"]):
            nodes = [layer] if isinstance(layer, Choice) else list(walk_choices(layer)) \
                if isinstance(layer, (dict, list)) else []
            for choice in nodes:
                out[choice.name] = (n.name, j)
    return out


def is_active(space: Space, name: str, partial: Mapping[str, str], _gates: dict | None = None) -> bool:
    """Whether choice `name` matters given the picks (option keys) made so far in walk order."""
    gate = (_gates if _gates is not None else gates(space)).get(name)
    if gate is None:
        return True
    depth_name, index = gate
    choices = space.choices()
    if depth_name not in partial:
        return True
    return choices[depth_name].values[partial[depth_name]] > index


def walk(space: Space, decide: Decide) -> dict[str, str]:
    """Ask `decide(name, choice)` for each active choice, in order; returns {name: option key} of those only."""
    table = gates(space)
    picks: dict[str, str] = {}
    for name, choice in space.choices().items():
        if not is_active(space, name, picks, table):
            continue
        key = decide(name, choice)
        picks[name] = choice.key_of(key)
    return picks


def active(space: Space, assignment: Mapping[str, str]) -> dict[str, str]:
    """The part of a full (or partial) assignment that a walk would ask for: inactive picks dropped."""
    keys = {n: space.choices()[n].key_of(v) for n, v in assignment.items() if n in space.choices()}
    return walk(space, lambda name, choice: keys[name] if name in keys else _missing(name))


def complete(space: Space, assignment: Mapping[str, Any]) -> dict[str, Any]:
    """Fill the inactive choices (those a walk skips) with their first option, so resolve sees every name."""
    table = gates(space)
    keys = {n: space.choices()[n].key_of(v) for n, v in assignment.items() if n in space.choices()}
    out = dict(assignment)
    for name, choice in space.choices().items():
        if name not in out and not is_active(space, name, keys, table):
            out[name] = keys[name] = choice.keys[0]
    return out


def enumerate_all(space: Space) -> Iterator[dict[str, str]]:
    """Every distinct architecture once (active choices only), in lexicographic order of option indices.

    The tree of walks is enumerated like an odometer: each walk follows a prefix of option indices and
    takes option 0 after it; then the last position that can still advance is advanced."""
    prefix: list[int] = []
    while True:
        widths: list[int] = []

        def decide(name: str, choice: Choice) -> str:
            i = len(widths)
            widths.append(len(choice))
            return choice.keys[prefix[i] if i < len(prefix) else 0]

        yield walk(space, decide)
        indices = prefix + [0] * (len(widths) - len(prefix))
        i = len(widths) - 1
        while i >= 0 and indices[i] + 1 >= widths[i]:
            i -= 1
        if i < 0:
            return
        prefix = indices[:i] + [indices[i] + 1]


def _missing(name: str) -> str:
    raise SpecError(f"the assignment leaves the active choice '{name}' open",
                    hint="give every choice a walk asks for, or use space.sample(seed)")
