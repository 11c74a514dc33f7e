"""The exported network's constructor: literal calls laid out as the plan says, wrapped to 100 columns.

Arguments are numbers, booleans and strings from each op's enumerated values (nothing else from a spec reaches
the code); an argument equal to the class's default is left out unless it is one of `_SHOWN`.
"""
from __future__ import annotations

import inspect
import keyword
import re
from typing import Any

from nas.dsl.errors import SpecError
from nas.dsl.ops import OPS
from nas.dsl.plan import Plan, Unit
from nas.export.text import safe_text

_STATE = re.compile(r"^(h[01]|n\d+)$")
_SLOT = re.compile(r"^op\d+$")
_SHOWN = {"c_in", "c", "k", "e", "s"}  # written even when they equal the constructor's default


def _literal(op: str, key: str, value: Any) -> str:
    """One constructor argument as Python source, from the whitelist of value kinds."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError(f"{op}: '{key}' is not finite", hint="exported code holds only finite numbers")
        return repr(float(value))
    if isinstance(value, str):
        param = OPS[op].params.get(key)
        allowed = param.kind if param is not None and isinstance(param.kind, tuple) else ()
        if value not in allowed:
            raise SpecError(f"{op}: '{key}' = {safe_text(value)!r} is not one of the op's enumerated values",
                            hint="only enumerated strings reach exported code")
        return repr(value)
    raise SpecError(f"{op}: '{key}' has a value of type {type(value).__name__} that cannot be exported")


def _call(unit: Unit, bn: dict, class_of: dict[str, str]) -> str:
    from nas import ops

    op = unit.spec["op"]
    if op not in ops.REGISTRY or op not in class_of:
        raise SpecError(f"unknown op '{safe_text(op)}'")
    args = ops.constructor_args(unit.spec, bn)
    signature = inspect.signature(ops.REGISTRY[op].__init__).parameters
    parts = []
    for key in ["c_in"] + [k for k in args if k != "c_in"]:  # c_in first, then the op's parameters
        if key not in args:
            continue
        value = args[key]
        if not key.isidentifier() or keyword.iskeyword(key) or key not in signature:
            raise SpecError(f"{op}: parameter '{safe_text(key)}' cannot be exported")
        default = signature[key].default
        if key not in _SHOWN and type(value) is type(default) and value == default:
            continue  # the class's own default: leave it out, for readability
        parts.append(f"{key}={_number(value) if key in ('bn_eps', 'bn_momentum') else _literal(op, key, value)}")
    return f"{class_of[op]}({', '.join(parts)})"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise SpecError(f"bn setting {safe_text(repr(value))} is not a number")
    return repr(float(value))


def _state(name: str) -> str:
    if not isinstance(name, str) or not _STATE.match(name):
        raise SpecError(f"cell state '{safe_text(name)}' cannot be exported")
    return repr(name)


def _slot(name: str) -> str:
    if not _SLOT.match(name):
        raise SpecError(f"node slot '{safe_text(name)}' cannot be exported")
    return repr(name)


def layout(plan: Plan, class_of: dict[str, str], indent: str) -> str:
    """The constructor's arguments: the network laid out as the plan says."""
    call = lambda u: _call(u, plan.bn, class_of)  # noqa: E731
    lines = ["stem=["] + [f"    {call(u)}," for u in plan.stem] + ["],"]
    if plan.cells:
        lines.append("body=[")
        for i, cell in enumerate(plan.cells):
            if not cell.live:
                lines.append(f"    DeadCell(),  # {i}: nothing reads this cell's output")
                continue
            pre0 = call(cell.pre0) if cell.pre0 is not None else "None"
            pre1 = call(cell.pre1) if cell.pre1 is not None else "None"
            kind = "reduction" if cell.reduce else "normal"
            lines.append(f"    CellModule(  # {i}: {kind} cell, C={int(cell.channels)}")
            lines += [f"        pre0={pre0},", f"        pre1={pre1},", "        nodes=["]
            for node in cell.nodes:
                slots = ", ".join(f"{_slot(u.path.rsplit('.', 1)[1])}: {call(u)}" for _, u in node.inputs)
                sources = ", ".join(_state(source) for source, _ in node.inputs)
                lines.append(f"            Node({{{slots}}}, [{sources}]),")
            lines += ["        ],", f"        concat=[{', '.join(_state(s) for s in cell.concat)}],", "    ),"]
        lines.append("],")
    else:
        lines.append("stages=[")
        for i, stage in enumerate(plan.stages):
            lines.append(f"    Stage([  # {i}")
            lines += [f"        {call(u)}," for u in stage]
            lines.append("    ]),")
        lines.append("],")
    lines += ["head=["] + [f"    {call(u)}," for u in plan.head] + ["],"]
    return "\n".join(wrapped for line in lines for wrapped in _wrap(indent + "    " + line))


_OPEN, _CLOSE = "([{", ")]}"
WIDTH = 100  # columns of model.py


def _wrap(line: str) -> list[str]:
    """A generated line of nested calls, lists and dicts, broken after commas to fit WIDTH: items continue
    under the first one, inside the first bracket whose contents split (its arguments, a Node's ops)."""
    if len(line) <= WIDTH:
        return [line]
    for start, ch in enumerate(line):
        if ch not in _OPEN:
            continue
        end, items = _split_items(line, start)
        if end is None or len(items) < 2:
            continue
        head, tail, pad = line[:start + 1], line[end:], " " * (start + 1)
        rows, row = [], head
        for k, item in enumerate(items):
            piece = item + ("," if k < len(items) - 1 else tail)
            if row not in (head, pad) and len(row) + 1 + len(piece) > WIDTH:
                rows.append(row.rstrip())
                row = pad + piece
            else:
                row += ("" if row in (head, pad) else " ") + piece
        rows.append(row)
        return [part for row in rows for part in (_wrap(row) if row != line else [row])]
    return [line]


def _split_items(line: str, start: int) -> tuple[int | None, list[str]]:
    """The index of the bracket closing the one at `start`, and the top-level items between them."""
    depth, items, current, quote = 0, [], "", None
    for i in range(start, len(line)):
        ch = line[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
            if depth == 1:
                continue
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                items.append(current.strip())
                return i, [item for item in items if item]
        elif ch == "," and depth == 1:
            items.append(current.strip())
            current = ""
            continue
        current += ch
    return None, []
