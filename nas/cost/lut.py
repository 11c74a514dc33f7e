"""Per-choice cost tables: an architecture's cost is a fixed part plus one table look-up per term.

A *term* is the set of op instances whose shapes depend on the same few choices: one searched layer (its
block choice, plus the stage's width/depth choices and the width feeding it), one cell node input (its op
and its source, since reading a cell input is strided in a reduction cell), or — for cells that concatenate
their unused nodes — the 1×1 preprocessing convs and the head, keyed by how many nodes each cell type
leaves unused and whether they read h0 and h1 at all. Every table entry is the fvcore count of the real op modules at their real input shapes,
so `estimate(a)` equals the full count of `build(resolve(a))` without tracing per candidate.

    cost(a) = fixed + Σ_term table_term[key_term(a)]
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from nas.cost.flops import Cost, unit_cost
from nas.dsl.nodes import Choice, Space, walk_choices
from nas.dsl.plan import Plan, Unit, plan
from nas.dsl.resolve import check_assignment, substitute

UnitCost = Callable[[Unit], Cost]


@dataclass
class Term:
    name: str
    deps: tuple[str, ...]  # choice names the key is made of (empty for derived keys)
    units: Callable[[str], bool]  # which unit paths this term covers
    key: Callable[[Mapping[str, str]], tuple] | None = None  # derived key; default: the deps' picks
    table: dict[tuple, Cost] = field(default_factory=dict)

    def key_of(self, assignment: Mapping[str, str]) -> tuple:
        return self.key(assignment) if self.key else tuple(assignment[d] for d in self.deps)


def _choice_names(node: Any) -> list[str]:
    if isinstance(node, Choice):
        return [node.name]
    return [c.name for c in walk_choices(node)] if isinstance(node, (dict, list)) else []


def _block_terms(space: Space) -> list[Term]:
    doc = space.doc
    terms: list[Term] = []
    width_source: list[str] = []  # choices that set the width entering the next unit
    for i, spec in enumerate(doc["stem"]):
        deps = tuple(dict.fromkeys(_choice_names(spec) + width_source))
        terms.append(Term(f"stem.{i}", deps, _exact(f"stem.{i}")))
        width_source = _choice_names(spec.get("c"))
    for i, row in enumerate(doc["stages"]):
        row_level = [n for k, v in row.items() if k not in ("layers", "n") for n in _choice_names(v)]
        n = row.get("n")
        layers = row["layers"] if "layers" in row else [None] * (max(n.values.values()) if isinstance(n, Choice)
                                                                 else n)
        min_depth = min(n.values.values()) if isinstance(n, Choice) else len(layers)
        for j, layer in enumerate(layers):
            deps = _choice_names(layer) + row_level + (width_source if j == 0 else [])
            if isinstance(n, Choice) and j >= min_depth:
                deps.append(n.name)
            path = f"stages.{i}.layers.{j}"
            terms.append(Term(path, tuple(dict.fromkeys(deps)), _exact(path)))
        width_source = _choice_names(row.get("c"))
    for i, spec in enumerate(doc["head"]):
        deps = tuple(dict.fromkeys(_choice_names(spec) + width_source))
        terms.append(Term(f"head.{i}", deps, _exact(f"head.{i}")))
        width_source = _choice_names(spec.get("c"))
    return terms


def _exact(path: str) -> Callable[[str], bool]:
    return lambda p: p == path


def _cell_terms(space: Space) -> list[Term]:
    doc = space.doc
    from nas.dsl.plan import body_sequence

    kinds = [name for name, _ in body_sequence(doc)]
    terms: list[Term] = []
    varying = [cell for cell in doc["cells"].values()
               if any(_choice_names(n.get(k)) for n in cell["nodes"] for k in n if k.startswith("in"))]

    def liveness(a: Mapping[str, str]) -> tuple:  # which cells exist depends on which inputs cells read
        return tuple(_io_key(cell, a)[:2] for cell in varying)

    for cname, cell in doc["cells"].items():
        instances = {k for k, kind in enumerate(kinds) if kind == cname}
        for j, node in enumerate(cell["nodes"]):
            for key in sorted(k for k in node if k.startswith("op")):
                t = key[2:]
                deps = tuple(dict.fromkeys(_choice_names(node[key]) + _choice_names(node[f"in{t}"])))
                suffix = f".nodes.{j}.op{t}"
                key_fn = (lambda a, d=deps: tuple(a[n] for n in d) + liveness(a)) if varying else None
                terms.append(Term(f"cells.{cname}{suffix}", deps, _in_cells(instances, suffix), key_fn))
    is_io = lambda p: p.startswith("head.") or p.endswith(".pre0") or p.endswith(".pre1")  # noqa: E731
    if varying:
        terms.append(Term("cells.io", (), is_io, key=lambda a: tuple(_io_key(cell, a) for cell in varying)))
    else:
        terms.append(Term("cells.io", (), is_io))
    for i, spec in enumerate(doc["stem"]):
        terms.append(Term(f"stem.{i}", tuple(_choice_names(spec)), _exact(f"stem.{i}")))
    return terms


def _in_cells(instances: set[int], suffix: str) -> Callable[[str], bool]:
    def covers(path: str) -> bool:
        if not (path.startswith("body.") and path.endswith(suffix)):
            return False
        return int(path.split(".")[1]) in instances
    return covers


def _io_key(cell: dict, assignment: Mapping[str, str]) -> tuple:
    """What a cell's preprocessing and output width depend on: whether h0 and h1 are read, and (when it
    concatenates its unused nodes) how many nodes no other node reads."""
    used = set(cell["concat"]) if isinstance(cell["concat"], list) else set()
    for node in cell["nodes"]:
        for key, value in node.items():
            if key.startswith("in"):
                used.add(value.values[assignment[value.name]] if isinstance(value, Choice) else value)
    unused = sum(1 for j in range(len(cell["nodes"])) if f"n{j}" not in used)
    return "h0" in used, "h1" in used, unused if cell["concat"] == "unused" else None


_LATENCY: dict[tuple, float] = {}


def _with_latency(cost: Cost, unit: Unit, timing) -> Cost:
    """Add the latency of the unit's op alone at its input shape (measured once per op, shape and timing)."""
    import json

    from nas import ops
    from nas.cost.latency import time_forward

    key = (json.dumps(unit.spec, sort_keys=True), unit.in_shape, timing)
    if key not in _LATENCY:
        import torch

        with torch.random.fork_rng(devices=[]):  # as in flops.py: a cache miss must not move a seeded search
            copies = [ops.make(unit.spec) for _ in range(timing.copies)]
            _LATENCY[key] = time_forward(copies, unit.in_shape, timing)
    return Cost(cost.flops, cost.params, _LATENCY[key])


class CostTable:
    """The per-choice cost table of a space (see the module docstring for the maths)."""

    def __init__(self, space: Space, unit_cost_fn: UnitCost | None = None, prefill: int = 64, seed: int = 0,
                 latency_device: Any = None):
        """`latency_device` (a device name, or a `nas.cost.latency.Timing`) adds measured per-op latency
        (FBNet's hardware-aware table); a bare device name times each op cache-cold, median of 15 runs."""
        self.space = space
        self._unit_cost = unit_cost_fn or (lambda u: unit_cost(u.spec, u.in_shape))
        if latency_device is not None:
            from nas.cost.latency import Timing

            timing = latency_device if isinstance(latency_device, Timing) else Timing(
                str(latency_device), warmup=3, repeats=15, copies=8)
            counted = self._unit_cost
            self._unit_cost = lambda u: _with_latency(counted(u), u, timing)
        self._choices = space.choices()
        self.terms = _cell_terms(space) if space.is_cell else _block_terms(space)
        base = self._base()
        base_plan = self._plan(base)
        covered = [u for u in base_plan.units() if any(t.units(u.path) and t.deps for t in self.terms)]
        self.fixed = Cost()
        self.fixed_units: list[Unit] = []  # the op instances the fixed part counts
        # Terms without dependencies are constant: fold them into the fixed part once.
        constant = [t for t in self.terms if not t.deps and t.key is None]
        for unit in base_plan.units():
            if unit in covered:
                continue
            if any(t.units(unit.path) for t in constant) or not any(t.units(unit.path) for t in self.terms):
                self.fixed = self.fixed + self._unit_cost(unit)
                self.fixed_units.append(unit)
        self.terms = [t for t in self.terms if t.deps or t.key is not None]
        for term in self.terms:
            if term.deps:
                self._fill(term, self._base())
        rng = random.Random(seed)
        for _ in range(prefill if any(t.key is not None for t in self.terms) else 0):
            self.estimate(space.sample(rng))

    def _plan(self, keys: Mapping[str, str]) -> Plan:
        return plan(substitute(self.space.doc, keys, self._choices))

    def _term_cost(self, term: Term, plan_: Plan) -> Cost:
        total = Cost()
        for unit in plan_.units():
            if term.units(unit.path):
                total = total + self._unit_cost(unit)
        return total

    def entry_units(self, term: Term, key: tuple) -> list[Unit]:
        """The op instances behind `term.table[key]` (terms keyed by their choices' picks only)."""
        keys = dict(self._base(), **dict(zip(term.deps, key)))
        return [u for u in self._plan(keys).units() if term.units(u.path)]

    def _fill(self, term: Term, base: dict[str, str]) -> None:
        options = [self._choices[d].keys for d in term.deps]
        for combo in itertools.product(*options):
            keys = dict(base, **dict(zip(term.deps, combo)))
            term.table[term.key_of(keys)] = self._term_cost(term, self._plan(keys))

    def _base(self) -> dict[str, str]:
        """First options everywhere — except that every cell's first node reads both h0 and h1, so the
        eagerly filled entries are those of the common case where every cell is live."""
        base = {name: c.keys[0] for name, c in self._choices.items()}
        for cname in self.space.doc.get("cells", {}):
            for t, state in ((0, "h0"), (1, "h1")):
                name = f"cells.{cname}.nodes.0.in{t}"
                if name in self._choices and state in self._choices[name].values:
                    base[name] = state
        return base

    def estimate(self, assignment: Mapping[str, Any]) -> Cost:
        """Cost of `space.resolve(assignment)` from the tables (derived keys seen first are counted once)."""
        keys = assignment if self._is_keys(assignment) else check_assignment(self.space, assignment)
        total_flops, total_params, latency = self.fixed.flops, self.fixed.params, self.fixed.latency_ms
        for term in self.terms:
            key = term.key_of(keys)
            cost = term.table.get(key)
            if cost is None:  # a derived key not met yet: count it once from the real plan
                cost = term.table[key] = self._term_cost(term, self._plan(keys))
            total_flops += cost.flops
            total_params += cost.params
            if latency is not None:
                latency += cost.latency_ms or 0.0
        return Cost(total_flops, total_params, latency)

    def _is_keys(self, assignment: Mapping[str, Any]) -> bool:
        return len(assignment) == len(self._choices) and all(
            isinstance(v, str) and v in self._choices[n].values for n, v in assignment.items()
            if n in self._choices)

    def rows(self) -> Iterable[tuple[str, tuple, Cost]]:
        """(term, key, cost) for every entry, for printing the table."""
        for term in self.terms:
            for key, cost in term.table.items():
                yield term.name, key, cost

    def __len__(self) -> int:
        return sum(len(t.table) for t in self.terms)
