"""Arch → nn.Module (`nas.build`; the module is `builder` so the function keeps the short name). Module paths follow the plan: `stem.0`, `stages.1.layers.2`, `body.3.nodes.1.op0`, `head.1`."""
from __future__ import annotations

import math

import torch
from torch import nn

from nas import ops
from nas.dsl.nodes import Arch, Space
from nas.dsl.plan import Cell, Plan


class Stage(nn.Module):
    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Node(nn.ModuleDict):
    """One cell node: `op0`, `op1`, ... applied to their source states and summed."""

    def __init__(self, ops_by_name: dict[str, nn.Module], sources: list[str]):
        super().__init__(ops_by_name)
        self.sources = sources

    def forward(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        out = None
        for op, source in zip(self.values(), self.sources):
            y = op(states[source])
            out = y if out is None else out + y
        return out


class CellModule(nn.Module):
    """A NASNet/DARTS cell: preprocess h0 (h_{i-1}) and h1 (h_i), run the nodes, concatenate
    `concat`."""

    def __init__(self, pre0: nn.Module | None, pre1: nn.Module | None, nodes: list[Node],
                 concat: list[str]):
        super().__init__()
        self.pre0 = pre0 if pre0 is not None else nn.Identity()
        self.pre1 = pre1 if pre1 is not None else nn.Identity()
        self.nodes = nn.ModuleList(nodes)
        self.concat = concat

    def forward(self, h0: torch.Tensor, h1: torch.Tensor) -> torch.Tensor:
        states = {"h0": self.pre0(h0), "h1": self.pre1(h1)}
        for j, node in enumerate(self.nodes):
            states[f"n{j}"] = node(states)
        return torch.cat([states[name] for name in self.concat], dim=1)


class DeadCell(nn.Module):
    """Stands in for a cell whose output nothing reads (a sampled cell may ignore h0 or h1)."""

    def forward(self, h0, h1):
        return None


class Network(nn.Module):
    """A block network: stem, stages of layers, head."""

    def __init__(self, stem: list[nn.Module], head: list[nn.Module], stages: list[Stage]):
        super().__init__()
        self.stem = nn.Sequential(*stem)
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


class CellNetwork(nn.Module):
    """A cell network: stem, a body of cells that each read the two states before them, head."""

    def __init__(self, stem: list[nn.Module], head: list[nn.Module], body: list[CellModule]):
        super().__init__()
        self.stem = nn.Sequential(*stem)
        self.body = nn.ModuleList(body)
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = h1 = x
        for layer in self.stem:  # the cells read the last two stem outputs
            h0, h1 = h1, layer(h1)
        if len(self.stem) == 1:
            h0 = h1
        for cell in self.body:
            h0, h1 = h1, cell(h0, h1)
        return self.head(h1)


def _cell_module(cell: Cell, bn: dict) -> CellModule:
    nodes = [Node({unit.path.rsplit(".", 1)[1]: ops.make(unit.spec, bn) for _, unit in node.inputs},
                  [source for source, _ in node.inputs]) for node in cell.nodes]
    pre0 = ops.make(cell.pre0.spec, bn) if cell.pre0 is not None else None
    pre1 = ops.make(cell.pre1.spec, bn) if cell.pre1 is not None else None
    return CellModule(pre0, pre1, nodes, cell.concat)


def build_plan(plan: Plan) -> Network | CellNetwork:
    bn = plan.bn
    stem = [ops.make(u.spec, bn) for u in plan.stem]
    head = [ops.make(u.spec, bn) for u in plan.head]
    if plan.cells:
        body = [_cell_module(cell, bn) if cell.live else DeadCell() for cell in plan.cells]
        return CellNetwork(stem, head, body=body)
    stages = [Stage([ops.make(u.spec, bn) for u in stage]) for stage in plan.stages]
    return Network(stem, head, stages=stages)


def init_weights(model: nn.Module) -> None:
    """He-normal (fan-out) convs, unit BN, small uniform linear layers: the usual ImageNet CNN init.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.weight.shape[1])
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def build(arch: Arch, seed: int | None = None) -> Network | CellNetwork:
    """Build the nn.Module of a fixed architecture; `seed` makes the initial weights reproducible.
    """
    if not isinstance(arch, Space):
        raise TypeError(f"build() takes an Arch, got {type(arch).__name__}")
    arch.require_fixed("resolve it first: space.resolve(space.sample(seed))")
    plan = arch.plan() if isinstance(arch, Arch) else None
    from nas.budget import check_budget

    check_budget(plan, str(arch.file))  # too large for this machine: refused before anything is allocated
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_plan(plan)
            init_weights(model)
        return model
    model = build_plan(plan)
    init_weights(model)
    return model
