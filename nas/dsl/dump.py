"""Normalized document → YAML text in the same grammar (choices written back as `$set` / `{choice: ...}`).

Rows, ops and nodes are written one per line in flow style, so a resolved architecture reads like a table
and diffs line by line.
"""
from __future__ import annotations

from typing import Any

import yaml

from nas.dsl.document import Choice, option_key

_ORDER = ("name", "description", "derived_from", "input", "classes", "bn", "scaling", "reference", "choices",
          "blocks", "stem", "stages", "cells", "body", "head", "preprocess")


def to_data(node: Any) -> Any:
    """Plain YAML-able data: Choice objects become their markers again."""
    if isinstance(node, Choice):
        if node.set_name:
            return f"${node.set_name}"
        values = list(node.values.values())
        if all(not isinstance(v, dict) and str(k) == _key(v) for k, v in node.values.items()):
            return {"choice": values}
        return {"choice": {k: to_data(v) for k, v in node.values.items()}}
    if isinstance(node, dict):
        return {k: to_data(v) for k, v in node.items() if not str(k).startswith("_")}
    if isinstance(node, list):
        return [to_data(v) for v in node]
    return node


def _key(value: Any) -> str:
    return option_key(value)


WIDTH = 100  # columns of dumped YAML: longer flow items continue on lines indented past their prefix


def _flow(value: Any, prefix: str = "") -> str:
    """`value` in flow style, after `prefix` on its line; continuation lines are indented under it."""
    indent = " " * len(prefix)
    room = WIDTH - len(prefix)
    while True:  # PyYAML's width is where it starts looking for a break, so narrow it until lines fit
        text = yaml.safe_dump(value, default_flow_style=True, width=max(room, 20), sort_keys=False).strip()
        text = text[:-3].strip() if text.endswith("\n...") or text.endswith("...") and "\n" in text else text
        lines = [line if i == 0 else indent + line.strip() for i, line in enumerate(text.splitlines())]
        if room <= 20 or len(prefix) + max(len(line) for line in lines[:1]) <= WIDTH and all(
                len(line) <= WIDTH for line in lines[1:]):
            return "\n".join(lines)
        room -= 10


def _is_flat(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_is_flat(v) and not isinstance(v, dict) or _is_small_dict(v) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, (dict, list)) for v in value)
    return True


def _is_small_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(not isinstance(v, (dict, list)) or
                                           (isinstance(v, list) and _is_flat(v)) for v in value.values())


def _emit(value: Any, indent: int, lines: list[str], prefix: str, block: bool = False) -> None:
    pad = " " * indent
    if isinstance(value, dict) and value and (block or not _is_flat(value)):
        lines.append(prefix.rstrip())
        for k, v in value.items():
            _emit(v, indent + 2, lines, f"{pad}  {_flow(k) if not isinstance(k, str) else _flow(k)}: ")
    elif isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        lines.append(prefix.rstrip())
        for item in value:
            if isinstance(item, dict) and not _is_flat(item):
                first = True
                for k, v in item.items():
                    lead = f"{pad}  - " if first else f"{pad}    "
                    _emit(v, indent + 4, lines, f"{lead}{k}: ")
                    first = False
            else:
                lines.append(f"{pad}  - {_flow(item, f'{pad}  - ')}")
    else:
        lines.append(prefix + _flow(value, prefix))


def dumps(space_or_doc: Any, header: str | None = None) -> str:
    doc = getattr(space_or_doc, "doc", space_or_doc)
    data = to_data(doc)
    if not data.get("choices"):
        data.pop("choices", None)
    if not data.get("blocks"):
        data.pop("blocks", None)
    lines = [f"# {line}" for line in (header or "").splitlines()]
    for key in sorted(data, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER)):
        value = data[key]
        if key == "choices":
            lines.append("choices:")
            for set_name, options in value.items():
                _emit(options, 2, lines, f"  {set_name}: ", block=isinstance(options, dict))
        elif key in ("stem", "head", "stages", "preprocess") or (
                isinstance(value, dict) and key in ("blocks", "choices", "cells")):
            _emit(value, 0, lines, f"{key}: ", block=key != "stages")
        else:
            lines.append(f"{key}: {_flow(value, f'{key}: ')}")
    return "\n".join(lines) + "\n"
