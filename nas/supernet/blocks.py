"""The supernet of a block space (FBNet, ProxylessNAS, MobileNetV3, MnasNet).

The units that depend on choices are the cost table's terms (`nas.cost.lut`): a searched layer depends on
its block or parameter choices, on the stage's width and depth choices, and (first layer of a stage) on the
width choice feeding it. Each such unit becomes a `MixedOp` over the combinations of those choices.

Widths are **padded**: a unit writes the widest candidate's channels, narrower candidates zero-padded, and a
reader takes the first channels its own candidate expects — at a one-hot sample that is exactly the derived
network. Depth is **gated**: a layer past the chosen depth is the identity (same shape inside a stage).
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

from nas import ops
from nas.cost.lut import _block_terms
from nas.dsl.nodes import Space
from nas.supernet.mixed import MixedOp, Sample
from nas.supernet.plans import OptionPlanner, deepest_base, depth_choices


class BlockSupernet(nn.Module):
    def __init__(self, space: Space):
        super().__init__()
        choices = space.choices()
        planner = OptionPlanner(space, deepest_base(space))
        base_plan = planner.plan()
        bn = base_plan.bn
        depths = depth_choices(space)
        terms = {t.name: t for t in _block_terms(space)}

        def unit_module(path: str) -> nn.Module:
            term = terms.get(path)
            deps = tuple(d for d in term.deps if d not in depths) if term else ()
            depth = next((d for d in (term.deps if term else ()) if d in depths), None)
            if not deps and depth is None:
                return ops.make(planner.unit(path).spec, bn)
            candidates, out_width = {}, 0
            for combo in itertools.product(*(range(len(choices[d])) for d in deps)):
                picks = {d: choices[d].keys[i] for d, i in zip(deps, combo)}
                unit = planner.unit(path, picks)
                candidates[combo] = (tuple(picks.values()), ops.make(unit.spec, bn), unit.in_shape[0])
                out_width = max(out_width, unit.out_shape[0])
            gate = None
            if depth is not None:
                layer = int(path.rsplit(".", 1)[1])
                gate = (depth, [choices[depth].values[k] > layer for k in choices[depth].keys])
            return MixedOp(deps, candidates, out_width, gate)

        self.stem = nn.ModuleList([unit_module(u.path) for u in base_plan.stem])
        self.stages = nn.ModuleList([_Stage([unit_module(u.path) for u in stage]) for stage in base_plan.stages])
        self.head = nn.ModuleList([unit_module(u.path) for u in base_plan.head])

    def forward(self, x: torch.Tensor, sample: Sample) -> torch.Tensor:
        for module in self._sequence():
            x = module(x, sample) if isinstance(module, MixedOp) else module(x)
        return x

    def _sequence(self):
        yield from self.stem
        for stage in self.stages:
            yield from stage.layers
        yield from self.head


class _Stage(nn.Module):
    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
