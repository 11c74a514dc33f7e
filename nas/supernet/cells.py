"""The supernet of a cell space (DARTS, NASNet): one candidate op per (node, earlier state, op option) edge.

The DSL describes a node by slots — `op0/in0`, `op1/in1`: each slot picks a source state and an op. DARTS
instead puts a mixed op on every edge (node j, earlier state s) and keeps the two strongest edges. Both read
the same modules here, the edge candidates `body.<k>.nodes.<j>.<s>.<op>`:

- `slots` parametrization (θ = the space's own choices): a node is Σ_t edge[in_t][op_t](state[in_t]), so its
  relaxation is Σ_s Σ_o W[s, o] · edge[s][o](state[s]) with W[s, o] = Σ_t p(in_t = s) · p(op_t = o): DARTS's
  edge weights, induced by the slots. `single_path` runs only the sampled (source, op) of each slot.
- `edges` parametrization (DARTS): θ per (node, source) over the ops, node = Σ_s Σ_o softmax(θ_js)[o] ·
  edge[s][o](state[s]); derive keeps the two edges whose strongest non-zero op weighs most.

Every cell computes all its states, so the supernet's cells are planned with every node reading the cell
inputs (all cells live, every node unused). A cell that concatenates its *unused* nodes (NASNet) is
**masked**: all nodes are concatenated, node m scaled by the probability (mixture) or indicator
(single_path) that no later slot reads it; the next cells' 1×1 preprocessing reads the full width, and the
derived network keeps the input channels of its unused nodes (`channel_map`).
"""
from __future__ import annotations

import torch
from torch import nn

from nas import ops
from nas.dsl.errors import SpecError
from nas.dsl.nodes import Choice, Space
from nas.dsl.ops import OPS
from nas.dsl.plan import body_sequence
from nas.supernet.mixed import Sample
from nas.supernet.names import escape
from nas.supernet.plans import OptionPlanner

PARAMETRIZATIONS = ("slots", "edges")


def _inputs_base(space: Space) -> dict[str, str]:
    """Every slot reads a cell input (even slots h0, odd slots h1, so both are read and every cell is live)
    and every op slot its first option."""
    base = {}
    for name, choice in space.choices().items():
        slot = name.rsplit(".", 1)[1]
        if slot.startswith("in"):
            first = "h0" if int(slot[2:]) % 2 == 0 else "h1"
            base[name] = first if first in choice.values else choice.keys[0]
        else:
            base[name] = choice.keys[0]
    return base


def _check_input_keys(space: Space) -> None:
    """Edges are keyed by the state they read, and an input pick is that key: refuse an input option set whose
    keys are not its states (`{older: h0}`) rather than fail inside the forward pass."""
    for name, choice in space.choices().items():
        slot = name.rsplit(".", 1)[1]
        if slot.startswith("in"):
            for key, state in choice.values.items():
                if key != state:
                    states = ", ".join(choice.values.values())
                    raise SpecError(f"input choice '{name}' names state '{state}' '{key}': the supernet needs input "
                                    "options named by their states", choice.where,
                                    f"list the states themselves: {slot}: {{choice: [{states}]}}")


class Slot:
    """One node input of the DSL: a source (fixed or a Choice) and an op (fixed or a Choice)."""

    def __init__(self, node: dict, t: int):
        self.source, self.op = node[f"in{t}"], node[f"op{t}"]

    def sources(self) -> list[str]:
        return list(self.source.values) if isinstance(self.source, Choice) else [self.source]

    def ops(self) -> list[str]:
        return list(self.op.keys) if isinstance(self.op, Choice) else ["fixed"]


class CellNode(nn.Module):
    def __init__(self, slots: list[Slot], edges: dict[str, dict[str, nn.Module]], zero_ops: set[str]):
        super().__init__()
        self.slots = slots
        self.edges = nn.ModuleDict({escape(s): nn.ModuleDict({escape(o): m for o, m in by_op.items()})
                                    for s, by_op in edges.items()})
        self.sources = list(edges)
        self.op_keys = {s: list(by_op) for s, by_op in edges.items()}
        self.zero_ops = zero_ops

    def edge(self, source: str, op: str) -> nn.Module:
        return self.edges[escape(source)][escape(op)]


class CellSupernet(nn.Module):
    def __init__(self, space: Space, parametrization: str = "slots", affine: bool = True):
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise SpecError(f"unknown cell parametrization '{parametrization}'", hint="slots or edges")
        self.parametrization = parametrization
        _check_input_keys(space)
        doc = space.doc
        self.kinds = [name for name, _ in body_sequence(doc)]
        self.cell_specs = doc["cells"]
        for cname, cell in self.cell_specs.items():
            if parametrization == "edges" and cell["concat"] == "unused":
                raise SpecError(f"cell '{cname}' concatenates its unused nodes; DARTS's edge parametrization "
                                "needs 'concat: nodes'", hint="use cells: slots")
        planner = OptionPlanner(space, _inputs_base(space))
        base = planner.plan()
        bn = base.bn

        def make(spec: dict) -> nn.Module:  # DARTS searches with norms that learn no scale/shift
            affine_ok = "affine" in OPS[spec["op"]].params
            return ops.make(dict(spec, affine=False) if not affine and affine_ok else spec, bn)

        self.stem = nn.ModuleList([ops.make(u.spec, bn) for u in base.stem])
        self.head = nn.ModuleList([ops.make(u.spec, bn) for u in base.head])
        body = []
        self.widths = [cell.channels for cell in base.cells]
        for k, cell in enumerate(base.cells):
            spec = self.cell_specs[cell.kind]
            module = nn.Module()
            module.pre0 = make(cell.pre0.spec) if cell.pre0 is not None else nn.Identity()
            module.pre1 = make(cell.pre1.spec) if cell.pre1 is not None else nn.Identity()
            nodes = []
            for j, node in enumerate(spec["nodes"]):
                count = sum(1 for key in node if key.startswith("op"))
                slots = [Slot(node, t) for t in range(count)]
                edges: dict[str, dict[str, nn.Module]] = {}
                zero = set()
                for t, slot in enumerate(slots):
                    for source in slot.sources():
                        for op in slot.ops():
                            picks = {slot.op.name: op} if isinstance(slot.op, Choice) else {}
                            if isinstance(slot.source, Choice):
                                picks[slot.source.name] = source
                            unit = planner.unit(f"body.{k}.nodes.{j}.op{t}", picks)
                            if op not in edges.setdefault(source, {}):
                                edges[source][op] = make(unit.spec)
                            if unit.spec["op"] == "zero":
                                zero.add(op)
                nodes.append(CellNode(slots, edges, zero))
            module.nodes = nn.ModuleList(nodes)
            body.append(module)
        self.body = nn.ModuleList(body)

    # -- θ ----------------------------------------------------------------------------------------------
    def arch_options(self, space: Space) -> dict[str, tuple[str, ...]]:
        if self.parametrization == "slots":
            return {name: c.keys for name, c in space.choices().items()}
        options = {}
        for cname, cell in self.cell_specs.items():
            k = self.kinds.index(cname)
            for j, node in enumerate(self.body[k].nodes):
                for source in node.sources:
                    options[edge_name(cname, j, source)] = tuple(node.op_keys[source])
        return options

    # -- forward ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        h0 = h1 = x
        for layer in self.stem:
            h0, h1 = h1, layer(h1)
        if len(self.stem) == 1:
            h0 = h1
        for k, cell in enumerate(self.body):
            h0, h1 = h1, self._cell(k, cell, h0, h1, sample)
        for layer in self.head:
            h1 = layer(h1)
        return h1

    def _cell(self, k: int, cell: nn.Module, h0, h1, sample: Sample) -> torch.Tensor:
        kind = self.kinds[k]
        spec = self.cell_specs[kind]
        states = {"h0": cell.pre0(h0), "h1": cell.pre1(h1)}
        for j, node in enumerate(cell.nodes):
            states[f"n{j}"] = self._node(kind, j, node, states, sample)
        concat = spec["concat"]
        if concat == "nodes":
            return torch.cat([states[f"n{j}"] for j in range(len(cell.nodes))], 1)
        if isinstance(concat, list):
            return torch.cat([states[s] for s in concat], 1)
        return torch.cat([unused_weight(spec, j, sample) * states[f"n{j}"] for j in range(len(cell.nodes))], 1)

    def _node(self, kind: str, j: int, node: CellNode, states: dict, sample: Sample) -> torch.Tensor:
        out = None
        for source, op, w in self._edge_weights(kind, j, node, sample):
            y = w * node.edge(source, op)(states[source])
            out = y if out is None else out + y
        return out

    def _edge_weights(self, kind: str, j: int, node: CellNode, sample: Sample):
        """(source, op, weight) of every edge that runs in this pass."""
        if self.parametrization == "edges" and edge_name(kind, j, node.sources[0]) in sample.weights:
            for source in node.sources:
                w = sample.weights[edge_name(kind, j, source)]
                if sample.index is not None:
                    i = sample.index[edge_name(kind, j, source)]
                    yield source, node.op_keys[source][i], w[i]
                else:
                    for i, op in enumerate(node.op_keys[source]):
                        yield source, op, w[i]
            return
        if sample.index is not None:  # one (source, op) per slot
            for slot in node.slots:
                source, w_in = _pick(slot.source, sample)
                op, w_op = _pick(slot.op, sample) if isinstance(slot.op, Choice) else ("fixed", None)
                yield source, op, w_in if w_op is None else (w_op if w_in is None else w_in * w_op)
            return
        weights: dict[tuple[str, str], torch.Tensor] = {}
        for slot in node.slots:
            for source in slot.sources():
                p_in = _prob(slot.source, source, sample)
                for op in slot.ops():
                    p_op = _prob(slot.op, op, sample) if isinstance(slot.op, Choice) else None
                    w = p_in if p_op is None else (p_op if p_in is None else p_in * p_op)
                    w = torch.ones(()) if w is None else w
                    weights[(source, op)] = w if (source, op) not in weights else weights[(source, op)] + w
        for (source, op), w in weights.items():
            yield source, op, w


def edge_name(kind: str, j: int, source: str) -> str:
    return f"cells.{kind}.nodes.{j}.edges.{source}"


def _pick(value, sample: Sample):
    if not isinstance(value, Choice):
        return value, None
    i = sample.index[value.name]
    return value.keys[i], sample.weights[value.name][i]


def _prob(value, key: str, sample: Sample):
    if not isinstance(value, Choice):
        return None
    return sample.weights[value.name][value.keys.index(key)]


def unused_weight(spec: dict, m: int, sample: Sample) -> torch.Tensor:
    """P(node m is read by no later slot) = Π_slots (1 − p(in = n_m)); the indicator under a hard sample."""
    w = torch.ones(())
    for node in spec["nodes"][m + 1:]:
        for key, value in node.items():
            if key.startswith("in"):
                if isinstance(value, Choice):
                    if f"n{m}" in value.values:
                        w = w * (1 - sample.weights[value.name][value.keys.index(f"n{m}")])
                elif value == f"n{m}":
                    return torch.zeros(())
    return w
