"""The normalized document: `Choice` and the normalizer that turns a parsed document into its normal form.

The bottom of the language's behaviour: `Space`/`Arch` (nas.dsl.nodes) sit on top of this module and of the
modules that read the normalized form (resolve, walk, transform, plan); none of those is imported here.

A document is normalized once (choice markers become `Choice` objects named by their position, rows with
per-layer choices are expanded into `layers`), and everything else — choices(), size(), resolve(), dump,
plan — reads that normalized form. Pure data: no torch here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from nas.dsl.errors import Location, SpecError, did_you_mean
from nas.dsl.limits import MAX_CELL_NODES, MAX_LAYERS_PER_ROW, check_at_most
from nas.dsl.meta import check_preprocess
from nas.dsl.parse import PosDict, PosList

TOP_KEYS = ("name", "description", "input", "classes", "choices", "blocks", "stem", "stages", "cells", "body",
            "head", "scaling", "bn", "reference", "preprocess", "derived_from")
ROW_KEYS = ("op", "block", "layers", "c", "n", "s", "shared")
CELL_KEYS = ("nodes", "inputs", "ops", "combine", "reduce", "concat")
BODY_KEYS = ("pattern", "N", "F", "preprocess")


@dataclass(frozen=True, eq=False)
class Choice:
    """One decision: a stable dotted `name` and its options, each under a stable key.

    Frozen: the document and `space.choices()` share each Choice, so no caller can change the space through
    it. `values` is a read-only view of a private deep copy; copies of a document share the Choice itself."""

    name: str
    values: Mapping[str, Any]  # option key -> value (a scalar, or an op spec / block-key for op choices)
    where: Location = field(default_factory=Location)
    set_name: str | None = None  # the named option set (`$tbs`) it came from, if any

    def __post_init__(self):
        object.__setattr__(self, "values", MappingProxyType(copy.deepcopy(dict(self.values))))

    def __deepcopy__(self, memo) -> "Choice":
        return self

    def __reduce__(self):  # picklable (Ray ships spaces to its workers) although the view itself is not
        return (Choice, (self.name, dict(self.values), self.where, self.set_name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and (self.name, dict(self.values), self.set_name) == (
            other.name, dict(other.values), other.set_name)

    __hash__ = None  # type: ignore[assignment]  # equal by value, like the mutable dataclass it replaced

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.values)

    @property
    def is_op(self) -> bool:
        return any(isinstance(v, dict) for v in self.values.values())

    def __len__(self) -> int:
        return len(self.values)

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __getitem__(self, index: int) -> str:
        return self.keys[index]

    def key_of(self, pick: Any) -> str:
        """Accept an option key, or a value that one option holds (3 for k: {choice: [3, 5]})."""
        if isinstance(pick, str) and pick in self.values:
            return pick
        for key, value in self.values.items():
            if value == pick and type(value) is type(pick):
                return key
        if str(pick) in self.values:
            return str(pick)
        raise SpecError(f"'{pick}' is not an option of choice '{self.name}'", self.where,
                        did_you_mean(str(pick), self.values))

    def __repr__(self) -> str:
        return f"Choice({self.name!r}, {list(self.values)})"


def option_key(value: Any) -> str:
    """The stable key of an option given inline as a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _is_marker(value: Any) -> bool:
    return (isinstance(value, str) and value.startswith("$")) or (isinstance(value, dict) and "choice" in value)


class _Normalizer:
    """Turns a parsed document into the normalized form, turning markers into named `Choice`s."""

    def __init__(self, doc: PosDict):
        self.doc = doc
        self.sets: dict[str, dict[str, Any]] = {}
        self.set_where: dict[str, Location] = {}

    # -- option sets ----------------------------------------------------------------------------
    def read_sets(self) -> None:
        raw = self.doc.get("choices", {})
        if not isinstance(raw, dict):
            raise SpecError("'choices' must be a mapping of named option sets", self.doc.loc("choices"),
                            "e.g. choices: {kernels: [3, 5, 7]}")
        for set_name, options in raw.items():
            self.sets[set_name] = self.options(options, raw.loc(set_name), f"option set '{set_name}'")
            self.set_where[set_name] = raw.loc(set_name)

    def options(self, options: Any, where: Location, what: str) -> dict[str, Any]:
        if isinstance(options, list):
            values = {}
            for i, value in enumerate(options):
                loc = options.loc(i) if isinstance(options, PosList) else where
                if isinstance(value, (dict, list)) or value is None:
                    raise SpecError(f"{what}: list options must be scalars", loc,
                                    "give op options as a mapping key: {op: ...}")
                key = option_key(value)
                if key in values:
                    raise SpecError(f"{what}: duplicate option {value!r}", loc)
                values[key] = value
        elif isinstance(options, dict):
            values = {}
            for key, value in options.items():
                if _is_marker(value):
                    raise SpecError(f"{what}: choices cannot nest", options.loc(key),
                                    "an option must be a value or an op, not another choice")
                if isinstance(value, dict) and "op" not in value:
                    raise SpecError(f"{what}: option '{key}' must name an 'op'", options.loc(key))
                values[option_key(key)] = value
            kinds = {isinstance(v, dict) for v in values.values()}
            if len(kinds) > 1:
                raise SpecError(f"{what} mixes ops and plain values", where,
                                "every option is an {op: ...} mapping, or every option is a value")
        else:
            raise SpecError(f"{what} must be a list or a mapping of options", where,
                            "e.g. [3, 5, 7] or {k3: {op: ir, k: 3}}")
        if not values:
            raise SpecError(f"{what} has no options", where, "a choice needs at least one option")
        return values

    def marker(self, value: Any, name: str, where: Location) -> Choice:
        if isinstance(value, str):
            set_name = value[1:]
            if set_name not in self.sets:
                raise SpecError(f"unknown option set '{value}'", where,
                                did_you_mean(set_name, self.sets) if self.sets else "define it under 'choices:'")
            return Choice(name, dict(self.sets[set_name]), where, set_name)
        extra = set(value) - {"choice"}
        if extra:
            raise SpecError(f"unexpected key '{sorted(extra)[0]}' beside 'choice'", where,
                            "write {choice: [options]}")
        return Choice(name, self.options(value["choice"], where, f"choice '{name}'"), where)

    def value(self, value: Any, name: str, where: Location) -> Any:
        """A field value: a marker becomes a Choice; an op-spec dict has its own fields normalized."""
        if _is_marker(value):
            return self.marker(value, name, where)
        if isinstance(value, dict):
            return self.spec(value, name)
        return value

    def spec(self, spec: dict, name: str) -> dict:
        out = PosDict()
        out.where = getattr(spec, "where", Location())
        out.key_where = dict(getattr(spec, "key_where", {}))
        out.value_where = dict(getattr(spec, "value_where", {}))
        for key, value in spec.items():
            loc = spec.loc(key) if isinstance(spec, PosDict) else out.where
            if key == "op" and _is_marker(value):
                raise SpecError("'op' cannot be a choice of op names", loc,
                                "define the alternatives as an option set of whole ops and use 'block: $set'")
            out[key] = self.value(value, f"{name}.{key}", loc)
        return out

    # -- sections -------------------------------------------------------------------------------
    def op_list(self, section: str) -> list:
        raw = self.doc.get(section, [])
        if not isinstance(raw, list):
            raise SpecError(f"'{section}' must be a list of ops", self.doc.loc(section),
                            "e.g. - {op: conv, k: 3, c: 32, s: 2}")
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict) or "op" not in item:
                raise SpecError(f"{section}[{i}] must be a mapping with an 'op'", raw.loc(i),
                                "e.g. {op: conv, k: 3, c: 32, s: 2}")
            out.append(self.spec(item, f"{section}.{i}"))
        return out

    def blocks(self) -> dict:
        raw = self.doc.get("blocks", {})
        if not isinstance(raw, dict):
            raise SpecError("'blocks' must be a mapping of named ops", self.doc.loc("blocks"))
        out = {}
        for key, spec in raw.items():
            if not isinstance(spec, dict) or "op" not in spec:
                raise SpecError(f"block '{key}' must be a mapping with an 'op'", raw.loc(key))
            out[str(key)] = self.spec(spec, f"blocks.{key}")
            if any(isinstance(v, Choice) for v in out[str(key)].values()):
                raise SpecError(f"block '{key}' holds a choice", raw.loc(key),
                                "named blocks are fixed; put alternatives under 'choices:'")
        return out

    def row(self, row: Any, i: int, where: Location) -> dict:
        """One stage row: explicit `layers`, a compact row (its choices shared by the stage), or a row whose
        per-layer choices are expanded into `layers`."""
        name = f"stages.{i}"
        shared = self.check_row(row, i, where)
        out = PosDict()
        out.where, out.key_where, out.value_where = where, dict(row.key_where), dict(row.value_where)
        params = {k: v for k, v in row.items() if k not in ROW_KEYS}
        out["c"] = self.value(row["c"], f"{name}.c", row.loc("c"))
        out["s"] = row["s"]
        if "layers" in row:
            return self.explicit_row(row, name, params, out)
        out["n"], max_n = self.depth(row, name)
        block = row.get("block")
        per_layer = not shared and (
            _is_marker(block) or any(_is_marker(v) for v in params.values()))
        if not per_layer:
            return self.compact_row(row, name, params, out)
        return self.expanded_row(row, name, params, out, max_n, where)

    def check_row(self, row: Any, i: int, where: Location) -> bool:
        """The row's shape: a mapping with one of op/block/layers, `c` and a fixed `s`; returns `shared`."""
        if not isinstance(row, dict):
            raise SpecError(f"stage {i} must be a mapping", where, "e.g. {op: ir, k: 3, e: 6, c: 24, n: 2, s: 2}")
        kinds = [k for k in ("op", "block", "layers") if k in row]
        if len(kinds) != 1:
            raise SpecError(f"stage {i} needs exactly one of 'op', 'block' or 'layers'", where,
                            "op: a fixed op; block: $set for a choice of ops; layers: an explicit list")
        for key in ("c", "s"):
            if key not in row:
                raise SpecError(f"stage {i} needs '{key}'", where, "c: output channels, s: stride of its first layer")
        if isinstance(row.get("s"), dict) or (isinstance(row.get("s"), str) and row["s"].startswith("$")):
            raise SpecError("stride 's' cannot be a choice", row.loc("s"), "search depth 'n' or width 'c' instead")
        shared = row.get("shared", False)
        if not isinstance(shared, bool):
            raise SpecError("'shared' must be true or false", row.loc("shared"))
        return shared

    def row_params(self, row: PosDict, name: str, params: dict, out: PosDict) -> None:
        """The row's op parameters, normalized into `out` (shared by every layer of the row)."""
        for key, value in params.items():
            out[key] = self.value(value, f"{name}.{key}", row.loc(key))

    def explicit_row(self, row: PosDict, name: str, params: dict, out: PosDict) -> dict:
        """`layers: [...]` given in full; only a depth choice may stand beside them (it keeps the first n)."""
        layers = row["layers"]
        if not isinstance(layers, list) or not layers:
            raise SpecError("'layers' must be a non-empty list", row.loc("layers"))
        if "n" in row:
            n = self.value(row["n"], f"{name}.n", row.loc("n"))
            if not isinstance(n, Choice) or any(
                    not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= len(layers)
                    for v in n.values.values()):
                raise SpecError("beside 'layers', 'n' must be a depth choice between 1 and len(layers)",
                                row.loc("n"), "a fixed depth is the length of 'layers'")
            out["n"] = n
        self.row_params(row, name, params, out)
        out["layers"] = [self.layer(item, f"{name}.layers.{j}", layers.loc(j)) for j, item in enumerate(layers)]
        return out

    def depth(self, row: PosDict, name: str) -> tuple[Any, int]:
        """The row's `n` (an int, default 1, or a depth Choice) and its largest value, both checked."""
        n = row.get("n", 1)
        value = self.value(n, f"{name}.n", row.loc("n")) if "n" in row else 1
        max_n = max(value.values.values()) if isinstance(value, Choice) else n
        if not isinstance(max_n, int) or isinstance(max_n, bool) or max_n < 1:
            raise SpecError(f"'n' must be a positive integer, got {n!r}", row.loc("n"))
        check_at_most(max_n, MAX_LAYERS_PER_ROW, "'n' (layers in the row)", row.loc("n"))
        if isinstance(value, Choice):
            bad = [v for v in value.values.values() if not isinstance(v, int) or isinstance(v, bool) or v < 1]
            if bad:
                raise SpecError(f"depth options must be positive integers, got {bad[0]!r}", row.loc("n"))
        return value, max_n

    def compact_row(self, row: PosDict, name: str, params: dict, out: PosDict) -> dict:
        """A row whose choices (if any) are shared by the whole stage: kept as one op or block."""
        block = row.get("block")
        if block is not None:
            out["block"] = self.block_ref(block, f"{name}.block", row.loc("block"))
        else:
            out["op"] = row["op"]
        self.row_params(row, name, params, out)
        return out

    def expanded_row(self, row: PosDict, name: str, params: dict, out: PosDict, max_n: int,
                     where: Location) -> dict:
        """A row with per-layer choices: `max_n` layers, each with its own Choices."""
        block = row.get("block")
        layer_template = {"op": row["op"]} if "op" in row else None
        layers = []
        for j in range(max_n):
            lname = f"{name}.layers.{j}"
            if layer_template is not None:
                spec = PosDict({**layer_template, **params})
                spec.where, spec.key_where, spec.value_where = where, row.key_where, row.value_where
                layers.append(self.spec(spec, lname))
            else:
                layers.append(self.block_ref(block, lname, row.loc("block")))
        if layer_template is None:
            self.row_params(row, name, params, out)
        if not isinstance(out["n"], Choice):
            del out["n"]  # a fixed depth is the length of the expanded layers
        out["layers"] = layers
        return out

    def block_ref(self, value: Any, name: str, where: Location) -> Any:
        """`block:` holds a choice of ops ($set or inline) or the key of a named block."""
        if _is_marker(value):
            choice = self.marker(value, name, where)
            if not choice.is_op:
                raise SpecError(f"'{choice.set_name or 'choice'}' holds values, not ops", where,
                                "a block choice's options must be {op: ...} mappings")
            return choice
        if isinstance(value, str):
            return value  # a key into `blocks:`, checked by the planner
        raise SpecError("'block' must be a $set, an inline choice or a named block", where)

    def layer(self, item: Any, name: str, where: Location) -> Any:
        if isinstance(item, dict) and "op" in item:
            return self.spec(item, name)
        if _is_marker(item):
            return self.block_ref(item, name, where)
        if isinstance(item, str):
            return item
        raise SpecError("a layer is an op mapping, a named block or a choice", where,
                        "e.g. {op: ir, k: 3, e: 6} or k3_e6 or $tbs")

    def cell(self, cname: str, cell: Any, where: Location) -> dict:
        if not isinstance(cell, dict):
            raise SpecError(f"cell '{cname}' must be a mapping", where)
        for key in cell:
            if key not in CELL_KEYS:
                raise SpecError(f"unknown cell key '{key}'", cell.key_loc(key), did_you_mean(key, CELL_KEYS))
        out = PosDict()
        out.where, out.key_where, out.value_where = where, dict(cell.key_where), dict(cell.value_where)
        out["reduce"] = cell.get("reduce", False)
        out["combine"] = cell.get("combine", "add")
        if out["combine"] != "add":
            raise SpecError(f"combine '{out['combine']}' is not supported", cell.loc("combine"),
                            "nodes combine their inputs with 'add'")
        if not isinstance(out["reduce"], bool):
            raise SpecError("'reduce' must be true or false", cell.loc("reduce"))
        nodes = cell.get("nodes")
        inputs = cell.get("inputs", 2)
        prefix = f"cells.{cname}.nodes"
        if isinstance(nodes, int) and not isinstance(nodes, bool):
            if nodes < 1:
                raise SpecError("a cell needs at least one node", cell.loc("nodes"))
            check_at_most(nodes, MAX_CELL_NODES, "'nodes' (nodes in the cell)", cell.loc("nodes"))
            if "ops" not in cell:
                raise SpecError(f"cell '{cname}' has a node count but no 'ops'", where,
                                "ops: $set names the candidate ops of every node input")
            if not isinstance(inputs, int) or isinstance(inputs, bool) or inputs < 1:
                raise SpecError("'inputs' must be a positive integer", cell.loc("inputs"))
            out["nodes"] = []
            for j in range(nodes):
                node = {}
                states = ["h0", "h1"] + [f"n{m}" for m in range(j)]
                for t in range(inputs):
                    node[f"op{t}"] = self.marker(cell["ops"], f"{prefix}.{j}.op{t}", cell.loc("ops")) \
                        if _is_marker(cell["ops"]) else cell["ops"]
                    node[f"in{t}"] = Choice(f"{prefix}.{j}.in{t}", {s: s for s in states}, cell.loc("nodes"))
                out["nodes"].append(node)
        elif isinstance(nodes, list) and nodes:
            if "ops" in cell or "inputs" in cell:
                raise SpecError("'ops'/'inputs' go with a node count, not an explicit node list",
                                cell.key_loc("ops" if "ops" in cell else "inputs"))
            out["nodes"] = []
            for j, node in enumerate(nodes):
                if not isinstance(node, dict) or not node:
                    raise SpecError(f"node {j} must be a mapping like {{op0: sep3, in0: h1, op1: skip, in1: h0}}",
                                    nodes.loc(j))
                parsed = PosDict()
                parsed.where, parsed.key_where, parsed.value_where = node.where, node.key_where, node.value_where
                for key, value in node.items():
                    if not (key.startswith("op") or key.startswith("in")) or not key[2:].isdigit():
                        raise SpecError(f"unknown node key '{key}'", node.key_loc(key), "use op0, in0, op1, in1, ...")
                    loc = node.loc(key)
                    if key.startswith("op"):
                        parsed[key] = self.layer(value, f"{prefix}.{j}.{key}", loc)
                    else:
                        parsed[key] = self.marker(value, f"{prefix}.{j}.{key}", loc) if _is_marker(value) else value
                out["nodes"].append(parsed)
        else:
            raise SpecError(f"cell '{cname}' needs 'nodes': a count (with 'ops') or a list of nodes",
                            cell.loc("nodes") if "nodes" in cell else where)
        concat = cell.get("concat", "unused")
        if not (concat in ("unused", "nodes") or isinstance(concat, list)):
            raise SpecError("'concat' must be 'unused', 'nodes' or a list of states", cell.loc("concat"))
        out["concat"] = list(concat) if isinstance(concat, list) else concat
        return out

    def run(self) -> dict:
        doc = self.doc
        if not isinstance(doc, dict):
            raise SpecError("the top level must be a mapping", getattr(doc, "where", Location()),
                            "start with 'name: ...'")
        for key in doc:
            if key not in TOP_KEYS:
                raise SpecError(f"unknown top-level key '{key}'", doc.key_loc(key), did_you_mean(key, TOP_KEYS))
        if "name" not in doc or not isinstance(doc["name"], str) or not doc["name"].strip():
            raise SpecError("missing 'name'", doc.loc("name") if "name" in doc else doc.where,
                            "every space or architecture has a name")
        has_stages, has_cells = "stages" in doc, "cells" in doc
        if has_stages == has_cells:
            raise SpecError("give either 'stages' (a block network) or 'cells' with 'body' (a cell network)",
                            doc.where)
        self.read_sets()
        out: dict[str, Any] = {"name": doc["name"]}
        if "description" in doc:
            out["description"] = str(doc["description"])
        inp = doc.get("input", {})
        if not isinstance(inp, dict) or set(inp) - {"channels", "size"}:
            raise SpecError("'input' must be {channels: C, size: S}", doc.loc("input"))
        out["input"] = {"channels": _positive(inp, "channels", 3), "size": _positive(inp, "size", 224)}
        out["classes"] = _positive(doc, "classes", 1000)
        if "preprocess" in doc:
            out["preprocess"] = check_preprocess(doc["preprocess"], doc.loc("preprocess"))
            record = out["preprocess"]
            if (record["size"], record["channels"]) != (out["input"]["size"], out["input"]["channels"]):
                raise SpecError(f"preprocess is for {record['channels']}×{record['size']}² inputs, the network "
                                f"takes {out['input']['channels']}×{out['input']['size']}²", doc.loc("preprocess"))
            names = record.get("classes")
            if names is not None and len(names) != out["classes"]:
                raise SpecError(f"preprocess names {len(names)} classes, the network has {out['classes']}",
                                doc.loc("preprocess"))
        for key in ("scaling", "bn", "reference", "derived_from"):
            if key in doc:
                if not isinstance(doc[key], dict):
                    raise SpecError(f"'{key}' must be a mapping", doc.loc(key))
                out[key] = doc[key]
        _check_numbers(out.get("scaling"), {"alpha": 1, "beta": 1, "gamma": 1, "divisor": 1, "dropout": 0},
                       "scaling", "α, β, γ ≥ 1 (EfficientNet: alpha 1.2, beta 1.1, gamma 1.15), divisor ≥ 1")
        _check_numbers(out.get("bn"), {"eps": 0, "momentum": 0}, "bn", "e.g. bn: {eps: 0.001, momentum: 0.01}")
        out["choices"] = self.sets
        out["blocks"] = self.blocks()
        out["stem"] = self.op_list("stem")
        if has_stages:
            stages = doc["stages"]
            if not isinstance(stages, list) or not stages:
                raise SpecError("'stages' must be a non-empty list of rows", doc.loc("stages"))
            out["stages"] = [self.row(row, i, stages.loc(i)) for i, row in enumerate(stages)]
        else:
            cells = doc["cells"]
            if not isinstance(cells, dict) or not cells:
                raise SpecError("'cells' must map cell names to cells", doc.loc("cells"),
                                "e.g. cells: {normal: {...}, reduction: {..., reduce: true}}")
            out["cells"] = {str(k): self.cell(str(k), v, cells.loc(k)) for k, v in cells.items()}
            body = doc.get("body")
            if not isinstance(body, dict) or "pattern" not in body:
                raise SpecError("a cell network needs 'body: {pattern: [...], N: .., F: ..}'",
                                doc.loc("body") if "body" in doc else doc.where)
            for key in body:
                if key not in BODY_KEYS:
                    raise SpecError(f"unknown body key '{key}'", body.key_loc(key), did_you_mean(key, BODY_KEYS))
            out["body"] = body
        out["head"] = self.op_list("head")
        out["_doc"] = doc
        return out


def _check_numbers(section: dict | None, minimum: dict, name: str, hint: str) -> None:
    """Keys of a `scaling:`/`bn:` section are known numbers not below their minimum."""
    for key, value in (section or {}).items():
        where = section.loc(key) if isinstance(section, PosDict) else Location()
        if key not in minimum:
            raise SpecError(f"unknown {name} key '{key}'", where, did_you_mean(key, minimum))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum[key]:
            raise SpecError(f"{name}.{key} must be a number ≥ {minimum[key]}, got {value!r}", where, hint)


def _positive(mapping: dict, key: str, default: int) -> int:
    value = mapping.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        where = mapping.loc(key) if isinstance(mapping, PosDict) else Location()
        raise SpecError(f"'{key}' must be a positive integer, got {value!r}", where)
    return value


def walk_choices(node: Any) -> Iterator[Choice]:
    """Every Choice in a normalized document, in document order."""
    if isinstance(node, Choice):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in ("choices", "_doc", "scaling", "reference", "bn"):
                yield from walk_choices(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_choices(item)
