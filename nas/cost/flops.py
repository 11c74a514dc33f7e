"""FLOPs and parameters with fvcore.

FLOPs are multiply-adds of convolutions, linear layers and matrix products — the convention of the
EfficientNet, FBNet and NASNet papers. `MULTIPLY_ADD_OPS` names the ops that count; every other handle fvcore
has (norms, pooling, upsampling, grid sampling) counts 0, and ops without a handle (residual adds,
activations, SE's rescale) stay uncounted.
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import torch
from torch import nn

# The FLOPs convention, in one place: multiply-adds of convolutions, linear layers and matrix products.
MULTIPLY_ADD_OPS = frozenset({"aten::_convolution", "aten::addmm", "aten::bmm", "aten::einsum", "aten::linear",
                              "aten::matmul", "aten::mm"})


def _not_counted(inputs, outputs) -> Counter:
    """fvcore handle for an op that is not a multiply-add under our convention (a norm, a pool)."""
    return Counter()


@dataclass
class Cost:
    flops: float = 0.0
    params: int = 0
    latency_ms: float | None = None

    def __add__(self, other: "Cost") -> "Cost":
        lat = None
        if self.latency_ms is not None or other.latency_ms is not None:
            lat = (self.latency_ms or 0.0) + (other.latency_ms or 0.0)
        return Cost(self.flops + other.flops, self.params + other.params, lat)

    def as_dict(self) -> dict:
        out = {"flops": self.flops, "params": self.params}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out


@dataclass
class Breakdown:
    """A whole-model count plus the count of each named submodule."""

    total: Cost
    by_module: dict[str, Cost] = field(default_factory=dict)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def flop_analysis(model: nn.Module, example: torch.Tensor):
    from fvcore.nn import FlopCountAnalysis

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, example)
        # set_op_handle(op, None) does not override a default handle in fvcore 0.1.5, so replace each one
        analysis.set_op_handle(**{op: _not_counted for op in analysis._op_handles if op not in MULTIPLY_ADD_OPS})
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        analysis.total()  # trace once, inside the warnings filter
    return analysis


def count_model(model: nn.Module, input_shape: tuple[int, int, int], modules: list[str] | None = None) -> Breakdown:
    """fvcore count of `model` on one image of `input_shape` (C, H, W); `modules` adds a per-module table."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = flop_analysis(model, torch.zeros(1, *input_shape))
            total = Cost(float(analysis.total()), param_count(model))
            table = {}
            if modules:
                per_module = analysis.by_module()
                named = dict(model.named_modules())
                for name in modules:
                    table[name] = Cost(float(per_module.get(name, 0)), param_count(named[name]))
    finally:
        model.train(was_training)
    return Breakdown(total, table)


@lru_cache(maxsize=None)
def _unit_cost_cached(spec_json: str, in_shape: tuple[int, int, int]) -> tuple[float, int]:
    from nas import ops

    # Building the op draws from torch's global generator, but only on a cache miss: without its own stream a
    # seeded search would depend on what this process had counted before (two identical DNAS runs differed).
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        module = ops.make(json.loads(spec_json))
        module.eval()
        flops = float(flop_analysis(module, torch.zeros(1, *in_shape)).total())
    return flops, param_count(module)


def unit_cost(spec: dict, in_shape: tuple[int, int, int]) -> Cost:
    """fvcore count of one op at its input shape, cached by (spec, shape)."""
    flops, params = _unit_cost_cached(json.dumps(spec, sort_keys=True), tuple(in_shape))
    return Cost(flops, params)
