"""Space + assignment → Arch, and the size of a space. Pure data."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

from nas.dsl.errors import SpecError, did_you_mean
from nas.dsl.document import Choice, walk_choices
from nas.dsl.walk import complete

if TYPE_CHECKING:  # Space sits above this module and delegates to it
    from nas.dsl.nodes import Space


def _plain(value: Any) -> Any:
    """Drop position bookkeeping from option values that are copied into an Arch."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def substitute(doc: dict, keys: Mapping[str, str], choices: Mapping[str, Choice]) -> dict:
    """Replace every Choice by its picked option; op options become named entries of `blocks:`."""
    blocks = dict(doc.get("blocks", {}))

    def block_key(choice: Choice, key: str) -> str:
        spec = choice.values[key]  # keeps its YAML positions for later error messages
        for candidate in (key, f"{choice.set_name or choice.name.replace('.', '_')}_{key}"):
            if candidate not in blocks or _plain(blocks[candidate]) == _plain(spec):
                blocks.setdefault(candidate, spec)
                return candidate
        raise SpecError(f"cannot name block '{key}' of choice '{choice.name}'", choice.where)  # pragma: no cover

    def sub(node: Any) -> Any:
        if isinstance(node, Choice):
            key = keys[node.name]
            return block_key(node, key) if node.is_op else node.values[key]
        if isinstance(node, dict):
            out = type(node)()
            for attr in ("where", "key_where", "value_where"):
                if hasattr(node, attr):
                    setattr(out, attr, getattr(node, attr))
            for k, v in node.items():
                out[k] = v if k in ("choices", "_doc", "scaling", "reference", "bn", "body") else sub(v)
            return out
        if isinstance(node, list):
            return [sub(item) for item in node]
        return node

    out = sub(doc)
    # A depth choice keeps the first n layers of the stage.
    for row in out.get("stages", []):
        if "layers" in row and "n" in row:
            row["layers"] = row["layers"][: row.pop("n")]
    out["blocks"] = blocks
    out["choices"] = {}
    return out


def check_assignment(space: Space, assignment: Mapping[str, Any]) -> dict[str, str]:
    """Option keys for every choice. Choices that the assignment makes inactive (layers beyond a depth pick)
    may be left out: they get their first option, which changes nothing in the architecture."""
    choices = space.choices()
    assignment = complete(space, assignment)
    keys = {}
    for name, pick in assignment.items():
        if name not in choices:
            raise SpecError(f"'{name}' is not a choice of space '{space.name}'", hint=did_you_mean(name, choices))
        keys[name] = choices[name].key_of(pick)
    missing = [name for name in choices if name not in keys]
    if missing:
        raise SpecError(f"the assignment leaves {len(missing)} choice(s) open, first '{missing[0]}'",
                        hint="give every name in space.choices(), or use space.sample(seed)")
    return keys


def resolve_doc(space: Space, assignment: Mapping[str, Any]) -> dict:
    """The normalized document of the architecture that `assignment` picks (Space.resolve wraps it in an Arch)."""
    keys = check_assignment(space, assignment)
    doc = substitute(space.doc, keys, space.choices())
    # Drop option sets and blocks that the architecture no longer uses.
    used = _used_block_keys(doc)
    order = list(space.doc.get("blocks", {})) + [k for c in space.choices().values() for k in c.keys]
    rank = {k: i for i, k in reversed(list(enumerate(order)))}
    doc["blocks"] = dict(sorted(((k, v) for k, v in doc["blocks"].items() if k in used),
                                key=lambda kv: rank.get(kv[0], len(rank))))
    return doc


def _used_block_keys(doc: dict) -> set:
    used = set()
    for row in doc.get("stages", []):
        used.update(item for item in row.get("layers", []) if isinstance(item, str))
        if isinstance(row.get("block"), str):
            used.add(row["block"])
    for cell in doc.get("cells", {}).values():
        for node in cell["nodes"]:
            used.update(v for k, v in node.items() if k.startswith("op") and isinstance(v, str))
    return used


def space_size(space: Space) -> int:
    """Distinct architectures: choices multiply, except that layers beyond a depth choice don't exist."""
    doc = space.doc
    counted: set[str] = set()
    total = 1
    for row in doc.get("stages", []):
        n = row.get("n")
        if isinstance(n, Choice) and "layers" in row:
            row_total = 0
            per_layer = [_count(layer, counted) for layer in row["layers"]]
            for depth in n.values.values():
                row_total += math.prod(per_layer[:depth])
            counted.add(n.name)
            total *= row_total
    for choice in walk_choices(doc):
        if choice.name not in counted:
            total *= len(choice)
    return total


def _count(layer: Any, counted: set) -> int:
    names = [c for c in walk_choices(layer if isinstance(layer, (dict, list)) else [layer])]
    counted.update(c.name for c in names)
    return math.prod(len(c) for c in names)
