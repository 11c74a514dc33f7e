"""Shape inference: a resolved document → the exact list of op instances the builder will create.

Every `Unit` carries its module path (`stages.1.layers.0`, `body.3.nodes.1.op0`), its complete op spec
(defaults filled, input width `c_in` included) and its input/output shapes. The builder, the cost tables
and the exporter all read this one plan, so they cannot disagree. Validation errors point at the YAML.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from nas.dsl.errors import Location, SpecError, did_you_mean
from nas.dsl.limits import MAX_CELLS, MAX_INT, check_at_most
from nas.dsl.ops import LAYER_KEYS, OPS, REQUIRED, SAME, OpSchema
from nas.dsl.parse import PosDict

Shape = tuple  # (channels, height, width)


@dataclass
class Unit:
    path: str
    spec: dict  # complete op spec: op, every parameter, c_in
    in_shape: Shape
    out_shape: Shape

    @property
    def op(self) -> str:
        return self.spec["op"]


@dataclass
class Node:
    inputs: list  # [(state name, Unit)]


@dataclass
class Cell:
    kind: str  # the cell's name in `cells:` (normal, reduction, ...)
    reduce: bool
    pre0: Unit | None  # None: h0 is used as it is (same width and size) or not read at all
    pre1: Unit | None  # None: h1 is not read
    nodes: list[Node]
    concat: list[str]
    channels: int  # C, the width of every node
    out_shape: Shape
    reads: frozenset = frozenset()  # which of h0/h1 the nodes (or an explicit concat) read
    live: bool = True  # False when no later cell (nor the head) reads this cell's output: it is not built


@dataclass
class Plan:
    name: str
    input_shape: Shape
    classes: int
    stem: list[Unit]
    head: list[Unit]
    stages: list[list[Unit]] = field(default_factory=list)  # block networks
    cells: list[Cell] = field(default_factory=list)  # cell networks
    bn: dict = field(default_factory=dict)

    def units(self) -> list[Unit]:
        out = list(self.stem)
        for stage in self.stages:
            out.extend(stage)
        for cell in self.cells:
            if not cell.live:
                continue
            out.extend(u for u in (cell.pre0, cell.pre1) if u is not None)
            for node in cell.nodes:
                out.extend(unit for _, unit in node.inputs)
        return out + list(self.head)


def _loc(spec: Any, key: str | None = None) -> Location:
    return spec.loc(key) if isinstance(spec, PosDict) else Location()


def schema_of(spec: dict) -> OpSchema | None:
    """The schema of a spec's op, or None when 'op' is missing, unknown or not a name (complete() says which)."""
    op = spec.get("op")
    return OPS.get(op) if isinstance(op, str) else None


def _check_kind(op: str, key: str, value: Any, kind: Any, spec: Any) -> Any:
    where = _loc(spec, key)
    if isinstance(kind, tuple):
        if value not in kind:
            raise SpecError(f"{op}: '{key}' must be one of {', '.join(map(str, kind))}, got {value!r}", where,
                            did_you_mean(str(value), kind))
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{op}: '{key}' must be true or false, got {value!r}", where)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{op}: '{key}' must be a number, got {value!r}", where)
    if not math.isfinite(value):
        raise SpecError(f"{op}: '{key}' must be finite, got {value!r}", where)
    if kind in ("int", "int0"):
        check_at_most(abs(value), MAX_INT, f"{op}: '{key}'", where)
        if not isinstance(value, int):  # as for a row's c and n: 3.0 is refused, not silently taken as 3
            hint = f"write {int(value)}" if value == int(value) else None
            raise SpecError(f"{op}: '{key}' must be an integer, got {value!r}", where, hint)
        value = int(value)
        if value < (1 if kind == "int" else 0):
            raise SpecError(f"{op}: '{key}' must be ≥ {1 if kind == 'int' else 0}, got {value}", where)
        return value
    if kind == "float0" and value < 0:
        raise SpecError(f"{op}: '{key}' must be ≥ 0, got {value}", where)
    if kind == "frac" and not 0 <= value < 1:
        raise SpecError(f"{op}: '{key}' must be in [0, 1), got {value}", where)
    if kind == "float" and value <= 0:
        raise SpecError(f"{op}: '{key}' must be > 0, got {value}", where)
    return float(value) if kind == "frac" else value


def complete(spec: dict, c_in: int, overrides: dict | None = None) -> dict:
    """Check a spec against its op schema and fill every default; `overrides` come from the context."""
    merged = dict(spec)
    merged.update(overrides or {})
    op = merged.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise SpecError(f"unknown op {op!r}" if not isinstance(op, str) else f"unknown op '{op}'", _loc(spec, "op"),
                        did_you_mean(str(op), OPS) if isinstance(op, str) else "'op' takes one op name")
    schema: OpSchema = OPS[op]
    out = {"op": op}
    for key, value in merged.items():
        if key == "op":
            continue
        if key in LAYER_KEYS:  # how transforms treat the layer; checked here, not passed to the op
            _check_kind(op, key, value, LAYER_KEYS[key], spec)
            continue
        if key not in schema.params:
            raise SpecError(f"op '{op}' has no parameter '{key}'", _loc(spec, key),
                            did_you_mean(key, schema.params) or f"parameters: {', '.join(schema.params)}")
    for key, param in schema.params.items():
        if key in merged and merged[key] is not None:
            out[key] = _check_kind(op, key, merged[key], param.kind, spec)
        elif param.default is REQUIRED:
            raise SpecError(f"op '{op}' needs '{key}'", _loc(spec), f"add {key}: ... to the op")
        elif param.default is SAME:
            out[key] = c_in
        else:
            out[key] = param.default
    out["c_in"] = c_in
    return out


def _check_unit(spec: dict, in_shape: Shape, where: Location) -> None:
    op, c_in, c = spec["op"], spec["c_in"], spec.get("c")
    if spec.get("s", 1) > 1 and min(in_shape[1:]) == 1:
        raise SpecError(f"{op}: the feature map is already 1×1 before a stride-{spec['s']} op", where,
                        "remove a downsampling stage or raise the input size")
    if op == "classifier" and not spec["linear"] and c != c_in:
        raise SpecError(f"a classifier without a linear layer needs one channel per class ({c_in} in, {c} "
                        "classes)", where, "end the body with a 1×1 conv to the number of classes")
    if OPS[op].keeps_width and c != c_in:
        raise SpecError(f"{op} keeps the width: it gets {c_in} channels but is asked for {c}", where,
                        "drop 'c' or add a 1×1 conv")
    if op == "conv" and (c_in % spec["groups"] or c % spec["groups"]):
        raise SpecError(f"conv groups={spec['groups']} must divide both widths ({c_in} in, {c} out)", where)
    if op == "ir":
        g = spec["groups"]
        hidden = expanded_width(spec)
        if c_in % g or c % g or hidden % g:
            raise SpecError(f"ir groups={g} must divide the widths ({c_in} in, {hidden} hidden, {c} out)", where)
    width = OPS[op].out_width(spec) if OPS[op].out_width else c
    if c != width:
        raise SpecError(f"{op}: its output width is {width}, but c = {c}", where, f"set c: {width}")
    if op == "shuffle" and (c % 2 or (spec["s"] == 1 and c != c_in)):
        raise SpecError(f"shuffle: width must be even and, at stride 1, unchanged ({c_in} in, {c} out)", where)
    if op == "skip" and spec["reduce"] == "factorized" and spec["s"] not in (1, 2):
        raise SpecError("a factorized reduction needs stride 1 or 2", where, "use reduce: conv")


def expanded_width(spec: dict) -> int:
    """Hidden width of an inverted residual: round(c_in · e)."""
    return max(1, int(round(spec["c_in"] * spec["e"])))


def make_unit(path: str, spec: dict, in_shape: Shape, overrides: dict | None = None) -> Unit:
    schema = schema_of(spec)
    c_in = in_shape[0] * in_shape[1] * in_shape[2] if schema is not None and schema.flattens else in_shape[0]
    full = complete(spec, c_in, overrides)
    _check_unit(full, in_shape, _loc(spec))
    out = OPS[full["op"]].shape(full, in_shape)
    if min(out[1:]) < 1:
        raise SpecError(f"{full['op']}: the feature map shrinks below 1×1 ({in_shape[1]}×{in_shape[2]} in)",
                        _loc(spec), "use padding, a smaller kernel, or a larger input size")
    return Unit(path, full, tuple(in_shape), tuple(out))


def _lookup_block(doc: dict, key: Any, where: Location) -> dict:
    if isinstance(key, dict):
        return key
    blocks = doc.get("blocks", {})
    if not isinstance(key, str) or key not in blocks:
        raise SpecError(f"unknown block '{key}'", where,
                        did_you_mean(str(key), blocks) if blocks else "define it under 'blocks:'")
    return blocks[key]


def _head_and_stem(doc: dict, section: str, shape: Shape) -> tuple[list[Unit], Shape]:
    units = []
    for i, spec in enumerate(doc.get(section, [])):
        overrides = {"c": doc["classes"]} if schema_of(spec) and OPS[spec["op"]].family == "head" else None
        if overrides and "c" in spec:
            raise SpecError("the classifier's width is the number of classes", _loc(spec, "c"),
                            "set 'classes:' at the top level")
        unit = make_unit(f"{section}.{i}", spec, shape, overrides)
        units.append(unit)
        shape = unit.out_shape
    return units, shape


def plan(doc: dict) -> Plan:
    """Infer every shape of a resolved document; raise a located SpecError when something cannot fit."""
    shape = (doc["input"]["channels"], doc["input"]["size"], doc["input"]["size"])
    result = Plan(doc["name"], shape, doc["classes"], [], [], bn=dict(doc.get("bn") or {}))
    result.stem, shape = _head_and_stem(doc, "stem", shape)
    if "stages" in doc:
        for i, row in enumerate(doc["stages"]):
            units, shape = _plan_row(doc, row, i, shape)
            result.stages.append(units)
    else:
        result.cells, shape = _plan_cells(doc, result.stem, shape)
    result.head, shape = _head_and_stem(doc, "head", shape)
    if not result.head or result.head[-1].op != "classifier":
        where = doc["_doc"].loc("head") if isinstance(doc.get("_doc"), PosDict) else Location()
        raise SpecError("the head must end with {op: classifier}", where, "it maps features to the classes")
    return result


def _plan_row(doc: dict, row: dict, i: int, shape: Shape) -> tuple[list[Unit], Shape]:
    params = {k: v for k, v in row.items() if k not in ("op", "block", "layers", "c", "n", "s", "shared")}
    c = row["c"]
    if not isinstance(c, int) or isinstance(c, bool) or c < 1:
        raise SpecError(f"stage {i}: 'c' must be a positive integer, got {c!r}", _loc(row, "c"))
    if not isinstance(row["s"], int) or isinstance(row["s"], bool) or row["s"] < 1:
        raise SpecError(f"stage {i}: 's' must be a positive integer, got {row['s']!r}", _loc(row, "s"))
    if "layers" in row:
        layers = row["layers"]
    else:
        n = row.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise SpecError(f"stage {i}: 'n' must be a positive integer, got {n!r}", _loc(row, "n"))
        one = row["block"] if "block" in row else PosDict({"op": row["op"]})
        if isinstance(one, PosDict) and not hasattr(one, "where"):
            one.where, one.key_where, one.value_where = row.where, row.key_where, row.value_where
        layers = [one] * n
    units = []
    for j, layer in enumerate(layers):
        spec = _lookup_block(doc, layer, _loc(row, "layers" if "layers" in row else "block"))
        merged = PosDict({**spec, **params})
        merged.where = getattr(spec, "where", getattr(row, "where", Location()))
        merged.key_where = {**getattr(row, "key_where", {}), **getattr(spec, "key_where", {})}
        merged.value_where = {**getattr(row, "value_where", {}), **getattr(spec, "value_where", {})}
        overrides = {"c": c, "s": row["s"] if j == 0 else 1}
        if schema_of(spec) is not None and not OPS[spec["op"]].strided:
            overrides.pop("s")
            if row["s"] != 1 and j == 0:
                raise SpecError(f"stage {i}: op '{spec['op']}' cannot take a stride", _loc(row, "s"))
        unit = make_unit(f"stages.{i}.layers.{j}", merged, shape, overrides)
        units.append(unit)
        shape = unit.out_shape
    return units, shape


_PATTERN = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(?:\*\s*(\w+))?\s*(?:@\s*([0-9.]+))?\s*$")


def body_sequence(doc: dict) -> list[tuple[str, float]]:
    """Expand `body.pattern` into (cell name, filter multiplier) per cell.

    A reduction cell doubles the running multiplier; `name@x` sets it to x for that item (NASNet's stem
    cells at F/4 and F/2 are `reduction@0.25, reduction@0.5`).
    """
    body = doc["body"]
    pattern = body["pattern"]
    where = body.loc("pattern") if isinstance(body, PosDict) else Location()
    if not isinstance(pattern, list) or not pattern:
        raise SpecError("'pattern' must be a non-empty list like [normal*N, reduction, normal*N]", where)
    out, mult = [], 1.0
    seen_cell = False
    for idx, item in enumerate(pattern):
        loc = pattern.loc(idx) if hasattr(pattern, "loc") else where
        match = _PATTERN.match(str(item))
        if not match:
            raise SpecError(f"cannot read pattern item {item!r}", loc, "write NAME, NAME*N, NAME*3 or NAME@0.5")
        name, count, scale = match.groups()
        if name not in doc["cells"]:
            raise SpecError(f"unknown cell '{name}' in pattern", loc, did_you_mean(name, doc["cells"]))
        if count is None:
            repeat = 1
        elif count.isdigit():
            repeat = int(count)
        elif count in body:
            repeat = body[count]
        else:
            raise SpecError(f"'{count}' is not defined in body", loc, f"add {count}: <int> beside 'pattern'")
        if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 0:
            raise SpecError(f"repeat count must be a non-negative integer, got {repeat!r}", loc)
        check_at_most(len(out) + repeat, MAX_CELLS, "the number of cells", loc)
        reduce = doc["cells"][name]["reduce"]
        if scale is not None:
            try:
                mult = float(scale)
            except ValueError:
                raise SpecError(f"cannot read the width multiplier '@{scale}'", loc,
                                "write e.g. reduction@0.5") from None
            if not 0 < mult <= 64:
                raise SpecError(f"width multiplier '@{scale}' must be in (0, 64]", loc)
        elif reduce and seen_cell:
            mult *= 2
        seen_cell = True
        out.extend([(name, mult)] * repeat)
    return out


def _plan_cells(doc: dict, stem: list[Unit], shape: Shape) -> tuple[list[Cell], Shape]:
    body = doc["body"]
    F = body.get("F")
    if not isinstance(F, int) or isinstance(F, bool) or F < 1:
        raise SpecError("body needs 'F', the filters of the first normal cells (a positive integer)",
                        body.loc("F") if isinstance(body, PosDict) and "F" in body else _loc(body))
    preprocess = body.get("preprocess", "always")
    if preprocess not in ("always", "as_needed"):
        raise SpecError("'preprocess' must be 'always' (DARTS) or 'as_needed' (NASNet)", _loc(body, "preprocess"))
    input_shape = (doc["input"]["channels"], doc["input"]["size"], doc["input"]["size"])
    outs = [u.out_shape for u in stem] or [input_shape]
    h0, h1 = (outs[-2] if len(outs) > 1 else outs[-1]), outs[-1]
    cells = []
    for k, (name, mult) in enumerate(body_sequence(doc)):
        spec = doc["cells"][name]
        C = max(1, int(round(F * mult)))
        where = _loc(spec)
        reads = {node[key] for node in spec["nodes"] for key in node if key.startswith("in")}
        if isinstance(spec["concat"], list):
            reads |= set(spec["concat"])
        pre0, pre1 = _cell_inputs(k, reads, h0, h1, C, preprocess, where)
        states = {"h0": (C if pre0 is not None else h0[0], h1[1], h1[2]), "h1": (C, h1[1], h1[2])}
        nodes, used = [], set()
        for j, node in enumerate(spec["nodes"]):
            planned, states[f"n{j}"] = _plan_node(doc, spec, name, k, j, node, states, used, C, where)
            nodes.append(planned)
        concat = _concat_list(spec, states, used, name)
        sizes = {states[s][1:] for s in concat}
        if len(sizes) != 1:
            raise SpecError(f"cell '{name}': concatenated states differ in size ({sorted(sizes)})", where,
                            "concatenate only states after the reduction")
        out_shape = (sum(states[s][0] for s in concat),) + states[concat[0]][1:]
        cells.append(Cell(name, spec["reduce"], pre0, pre1, nodes, concat, C, out_shape,
                          frozenset(reads & {"h0", "h1"})))
        h0, h1 = h1, out_shape
    _mark_live(cells)
    return cells, h1


def _one_reduction_apart(larger: int, smaller: int) -> bool:
    """A stride-2 reduction (with PyTorch's rounding up of odd sizes) takes `larger` to `smaller`."""
    return larger == 2 * smaller or (larger + 1) // 2 == smaller


def _cell_inputs(k: int, reads: set, h0: Shape, h1: Shape, C: int, preprocess: str, where: Location):
    """The units that bring the cell's two inputs to C channels at h1's size (None where nothing is needed):
    h0 (two cells back) is halved by a factorized reduction when a reduction cell lies between."""
    if "h0" not in reads:  # an input no node reads is not computed at all (tracing would drop it too)
        pre0 = None
    elif h0[1] != h1[1]:
        if not _one_reduction_apart(h0[1], h1[1]):
            raise SpecError(f"cell {k}: inputs of sizes {h0[1]} and {h1[1]} cannot be matched", where)
        pre0 = make_unit(f"body.{k}.pre0", {"op": "skip", "reduce": "factorized"}, h0, {"c": C, "s": 2})
    elif preprocess == "as_needed" and h0[0] == C:
        pre0 = None
    else:
        pre0 = make_unit(f"body.{k}.pre0", {"op": "conv", "k": 1, "preact": True}, h0, {"c": C})
    pre1 = make_unit(f"body.{k}.pre1", {"op": "conv", "k": 1, "preact": True}, h1, {"c": C}) \
        if "h1" in reads else None
    return pre0, pre1


def _plan_node(doc: dict, spec: dict, name: str, k: int, j: int, node: dict, states: dict, used: set, C: int,
               where: Location) -> tuple[Node, Shape | None]:
    """Node j of cell k and its output shape: each (op, input) pair planned on its input's shape; the pairs
    must agree in shape. A reduction cell strides every op that reads h0 or h1."""
    inputs, out = [], None
    count = sum(1 for key in node if key.startswith("op"))
    for t in range(count):
        if f"op{t}" not in node or f"in{t}" not in node:
            raise SpecError(f"cell '{name}' node {j} needs op{t} and in{t}", where)
        src = node[f"in{t}"]
        if src not in states:
            raise SpecError(f"cell '{name}' node {j}: input '{src}' does not exist", _loc(node, f"in{t}"),
                            f"node {j} can read {', '.join(states)}")
        used.add(src)
        op_spec = _lookup_block(doc, node[f"op{t}"], where)
        overrides = {"c": C}
        if schema_of(op_spec) is not None and OPS[op_spec["op"]].strided:
            overrides["s"] = 2 if spec["reduce"] and src in ("h0", "h1") else 1
        unit = make_unit(f"body.{k}.nodes.{j}.op{t}", op_spec, states[src], overrides)
        if out is not None and unit.out_shape != out:
            hint = ("in a reduction cell every op reading h0/h1 is strided" if spec["reduce"]
                    else "the ops of a node must give one shape: use ops that keep the size")
            raise SpecError(f"cell '{name}' node {j}: inputs disagree in shape ({out} vs {unit.out_shape})",
                            node.loc() if isinstance(node, PosDict) else where, hint)
        out = unit.out_shape
        inputs.append((src, unit))
    return Node(inputs), out


def _mark_live(cells: list[Cell]) -> None:
    """A cell whose output no later live cell reads would be computed for nothing: mark it dead."""
    needed = {len(cells) - 1}  # the head reads the last cell
    for k in range(len(cells) - 1, -1, -1):
        cells[k].live = k in needed
        if cells[k].live:
            if "h1" in cells[k].reads:
                needed.add(k - 1)
            if "h0" in cells[k].reads:
                needed.add(k - 2)


def _concat_list(spec: dict, states: dict, used: set, name: str) -> list[str]:
    concat = spec["concat"]
    node_names = [s for s in states if s.startswith("n")]
    if concat == "nodes":
        return node_names
    if concat == "unused":
        return [s for s in node_names if s not in used]
    for s in concat:
        if s not in states:
            raise SpecError(f"cell '{name}': concat names unknown state '{s}'", _loc(spec, "concat"),
                            did_you_mean(str(s), states))
    return list(concat)
