"""The expected cost of the supernet's architecture distribution, as a differentiable function of θ.

Choices are sampled independently, p_c = softmax(θ_c). The cost table (`nas.cost.lut.CostTable`) writes an
architecture's cost as fixed + Σ_term table_term[key_term(a)], so by linearity

    E[cost] = fixed + Σ_term E[table_term[key_term(a)]].

- **Block spaces**: a term's key is the picks of a few distinct choices (d_1 … d_k: a layer's block, the
  stage's width and depth, the width feeding it). Independence makes their joint the product of marginals:
  E_term = Σ_{i_1…i_k} T[i_1, …, i_k] · Π_j p_{d_j}[i_j] — a vector for one choice, a contracted tensor for
  several (MnasNet's shared rows, width and depth).
- **Cell spaces** (`concat: nodes` or a fixed list): whether a cell instance exists depends on which cell
  inputs (h0, h1) the slots of each cell type read, so a node op costs
      E = Σ_s Σ_F P(in_t = s, F) · Σ_{instances i} live_i(F) · Σ_o p(op_t = o) · cost_i(s, o),
  F the read flags (h0 read?, h1 read?) of every cell type. Given its slots' independent picks, a type's
  flags follow by inclusion–exclusion: with a = Π(1 − q0), b = Π(1 − q1) over slots (q0, q1 the
  probabilities of reading h0, h1), and P(neither) = 0 (node 0 can read nothing but h0 or h1):
  P(h1 only) = a, P(h0 only) = b, P(both) = 1 − a − b; conditioning on in_t = s fixes that slot's (q0, q1).
  Preprocessing and the head depend on the flags only: E_io = Σ_F P(F) · cost_io(F).
  Cells that concatenate their *unused* nodes (NASNet) would also need the distribution of the number of
  unused nodes; that is not implemented and is refused with a clear error.
"""
from __future__ import annotations

import itertools

import torch

from nas.cost.lut import CostTable, _io_key
from nas.dsl.errors import SpecError
from nas.dsl.nodes import Choice, Space
from nas.dsl.plan import _mark_live, body_sequence
from nas.supernet.plans import OptionPlanner

METRICS = ("flops", "params", "latency")


def metric_of(cost, metric: str) -> float:
    if metric == "latency":
        if cost.latency_ms is None:
            raise ValueError("this cost table has no latency")  # an internal error: the table was built without
        return cost.latency_ms
    return float(getattr(cost, metric))


class ExpectedCost:
    """`expected(probs)` → E[cost] (a 0-d tensor) under independent choices with probabilities `probs`."""

    def __init__(self, space: Space, metric: str = "flops", table: CostTable | None = None,
                 latency_device: str | None = None):
        if metric not in METRICS:
            raise SpecError(f"unknown cost '{metric}'", hint=f"one of {', '.join(METRICS)}")
        self.space, self.metric = space, metric
        self.table = table or CostTable(space, latency_device=latency_device if metric == "latency" else None)
        self.fixed = metric_of(self.table.fixed, metric)
        self.choices = space.choices()
        if space.is_cell:
            self._cells = _CellExpectation(self)
        else:
            self._terms = []
            for term in self.table.terms:
                shape = [len(self.choices[d]) for d in term.deps]
                values = torch.zeros(shape, dtype=torch.float64)
                for combo in itertools.product(*(range(n) for n in shape)):
                    key = tuple(self.choices[d].keys[i] for d, i in zip(term.deps, combo))
                    values[combo] = metric_of(term.table[key], metric)
                self._terms.append((term.deps, values))

    def __call__(self, probs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.space.is_cell:
            return self.fixed + self._cells(probs)
        total = torch.zeros((), dtype=torch.float64)
        for deps, values in self._terms:
            out = values
            for dep in reversed(deps):  # contract the last axis with that choice's marginal
                out = out @ probs[dep].to(torch.float64)
            total = total + out
        return (self.fixed + total).float()

    def exact(self, assignment: dict[str, str]) -> float:
        return metric_of(self.table.estimate(assignment), self.metric)


class _CellExpectation:
    def __init__(self, owner: ExpectedCost):
        space, table = owner.space, owner.table
        doc = space.doc
        self.kinds = [name for name, _ in body_sequence(doc)]
        self.types = list(doc["cells"])
        for cname, cell in doc["cells"].items():
            if cell["concat"] == "unused":
                raise SpecError(f"the expected cost of cells that concatenate their unused nodes ('{cname}') is "
                                "not implemented", space.file, "search it with alpha: 0 (no cost term)")
        self.cells = doc["cells"]
        self.slots = {c: [(j, t, node[f"in{t}"], node[f"op{t}"]) for j, node in enumerate(cell["nodes"])
                          for t in range(sum(1 for k in node if k.startswith("op")))]
                      for c, cell in self.cells.items()}
        self.flag_combos = list(itertools.product(*[[(False, False), (False, True), (True, False), (True, True)]
                                                    for _ in self.types]))
        self.live = [self._live(combo) for combo in self.flag_combos]
        base = {name: c.keys[0] for name, c in space.choices().items()}
        planner = OptionPlanner(space, base)
        unit_cost = table._unit_cost
        # cost_i(s, o) of every instance, node, slot source and op
        self.edge_cost: dict[tuple, float] = {}
        for cname, slots in self.slots.items():
            for j, t, source, op in slots:
                for s in (source.keys if isinstance(source, Choice) else [source]):
                    for o in (op.keys if isinstance(op, Choice) else [None]):
                        picks = {}
                        if isinstance(source, Choice):
                            picks[source.name] = s
                        if isinstance(op, Choice):
                            picks[op.name] = o
                        p = planner.plan(picks)
                        for i, kind in enumerate(self.kinds):
                            if kind == cname:
                                unit = next(u for u in _node_units(p, i) if u.path == f"body.{i}.nodes.{j}.op{t}")
                                self.edge_cost[(i, j, t, s, o)] = metric_of(unit_cost(unit), owner.metric)
        io_terms = [term for term in table.terms if term.name == "cells.io"]
        self.io_cost = []
        for combo in self.flag_combos:
            assignment = self._realize(space, combo)
            if assignment is None or not io_terms:
                self.io_cost.append(0.0)  # no assignment reads exactly these inputs: probability 0
                continue
            term = io_terms[0]
            self.io_cost.append(metric_of(table._term_cost(term, table._plan(assignment)), owner.metric))
            assert all(_io_key(self.cells[c], assignment)[:2] == f for c, f in zip(self.types, combo))

    def _live(self, combo) -> list[bool]:
        from types import SimpleNamespace

        flags = dict(zip(self.types, combo))
        cells = [SimpleNamespace(reads={s for s, on in zip(("h0", "h1"), flags[k]) if on}, live=True)
                 for k in self.kinds]
        _mark_live(cells)
        return [c.live for c in cells]

    def _realize(self, space: Space, combo) -> dict[str, str] | None:
        """An assignment whose cell types read exactly the given cell inputs, or None when none does (the
        combination then has probability 0)."""
        assignment = {name: c.keys[0] for name, c in space.choices().items()}
        for cname, (h0, h1) in zip(self.types, combo):
            concat = self.cells[cname]["concat"]
            forced = set(concat) if isinstance(concat, list) else set()
            picks = _reading_exactly(self.slots[cname], forced, {s for s, on in (("h0", h0), ("h1", h1)) if on})
            if picks is None:
                return None
            assignment.update(picks)
        return assignment

    def _flags(self, cname: str, probs, fixed_slot: int | None = None, fixed_source: str | None = None):
        """P(flags) of one cell type: a tensor over (F,F), (F,T), (T,F), (T,T); `fixed_source` is the state
        slot `fixed_slot` reads."""
        a = b = torch.ones((), dtype=torch.float64)
        concat = self.cells[cname]["concat"]
        forced = set(concat) if isinstance(concat, list) else set()
        for n, (_, _, source, _) in enumerate(self.slots[cname]):
            if n == fixed_slot:
                q0, q1 = float(fixed_source == "h0"), float(fixed_source == "h1")
            elif isinstance(source, Choice):  # an option's value is the state it reads (its key may differ)
                p = probs[source.name].to(torch.float64)
                q0 = p @ torch.tensor([v == "h0" for v in source.values.values()], dtype=torch.float64)
                q1 = p @ torch.tensor([v == "h1" for v in source.values.values()], dtype=torch.float64)
            else:
                q0, q1 = float(source == "h0"), float(source == "h1")
            a, b = a * (1 - q0), b * (1 - q1)
        if "h0" in forced:  # read by the concat list, whatever the slots pick
            a = torch.zeros((), dtype=torch.float64)
        if "h1" in forced:
            b = torch.zeros((), dtype=torch.float64)
        return torch.stack([torch.zeros((), dtype=torch.float64), a, b, 1 - a - b])

    def _joint(self, flags: dict[str, torch.Tensor]) -> torch.Tensor:
        """P(F) for every combination of the types' flags (types are independent)."""
        out = []
        for combo in self.flag_combos:
            p = torch.ones((), dtype=torch.float64)
            for cname, f in zip(self.types, combo):
                p = p * flags[cname][2 * f[0] + f[1]]
            out.append(p)
        return torch.stack(out)

    def __call__(self, probs: dict[str, torch.Tensor]) -> torch.Tensor:
        flags = {c: self._flags(c, probs) for c in self.types}
        live = torch.tensor(self.live, dtype=torch.float64)  # combos × instances
        total = self._joint(flags) @ torch.tensor(self.io_cost, dtype=torch.float64)
        for cname, slots in self.slots.items():
            instances = [i for i, k in enumerate(self.kinds) if k == cname]
            for n, (j, t, source, op) in enumerate(slots):
                for s in (source.keys if isinstance(source, Choice) else [source]):
                    p_s = probs[source.name][source.keys.index(s)].to(torch.float64) \
                        if isinstance(source, Choice) else 1.0
                    joint = self._joint(dict(flags, **{cname: self._flags(cname, probs, n, _state(source, s))}))
                    for i in instances:
                        if isinstance(op, Choice):
                            costs = torch.tensor([self.edge_cost[(i, j, t, s, o)] for o in op.keys],
                                                 dtype=torch.float64)
                            op_cost = probs[op.name].to(torch.float64) @ costs
                        else:
                            op_cost = self.edge_cost[(i, j, t, s, None)]
                        total = total + p_s * (joint @ live[:, i]) * op_cost
        return total.float()


def _state(source, key: str) -> str:
    """The state a slot reads when its source choice picks `key` (or its fixed source)."""
    return source.values[key] if isinstance(source, Choice) else source


def _reading_exactly(slots, forced: set, wanted: set) -> dict[str, str] | None:
    """Picks of the slots' source choices under which a cell reads exactly the cell inputs `wanted` (with
    `forced`, the inputs its concat list reads anyway), or None when no picks do."""
    unwanted = {"h0", "h1"} - wanted
    if forced & unwanted:
        return None
    covered = forced & wanted
    allowed = []  # per source choice: its keys that read no unwanted input
    for _, _, source, _ in slots:
        if not isinstance(source, Choice):
            if source in unwanted:
                return None
            covered = covered | ({source} & wanted)
            continue
        keys = [k for k in source.keys if source.values[k] not in unwanted]
        if not keys:
            return None
        allowed.append((source, keys))
    missing = sorted(wanted - covered)
    # each missing input gets a slot of its own (at most two); any allowed key suits every other slot
    for chosen in itertools.permutations(range(len(allowed)), len(missing)):
        if all(any(allowed[i][0].values[k] == m for k in allowed[i][1]) for m, i in zip(missing, chosen)):
            picks = {}
            for i, (source, keys) in enumerate(allowed):
                if i in chosen:
                    wanted_state = missing[chosen.index(i)]
                    picks[source.name] = next(k for k in keys if source.values[k] == wanted_state)
                else:
                    picks[source.name] = keys[0]
            return picks
    return None


def _node_units(plan, i: int):
    cell = plan.cells[i]
    for node in cell.nodes:
        for _, unit in node.inputs:
            yield unit


def cost_extremes(expected: ExpectedCost, samples: int = 400, seed: int = 0) -> tuple[float, float, bool]:
    """(smallest, largest, exact) cost of the space. Exact where no choice enters two terms (FBNet, ProxylessNAS,
    per-layer choices, a layer's kernel and expansion): then each term's extreme is independent. Otherwise the
    extremes of `samples` random architectures (exact = False: the true extremes may lie outside them)."""
    import random

    space = expected.space
    if not space.is_cell:
        flat = [d for ds, _ in expected._terms for d in ds]
        if len(flat) == len(set(flat)):
            low = expected.fixed + sum(float(v.min()) for _, v in expected._terms)
            high = expected.fixed + sum(float(v.max()) for _, v in expected._terms)
            return low, high, True
    rng = random.Random(seed)
    costs = [expected.exact(space.sample(rng)) for _ in range(samples)]
    return min(costs), max(costs), False
