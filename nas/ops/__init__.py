"""Op implementations, one small nn.Module per op named in `nas.dsl.ops.OPS`.

`make(spec, bn)` builds the module for a complete spec from the plan; `REGISTRY` maps op name → class and a
test checks that it matches the DSL's vocabulary exactly.
"""
from __future__ import annotations

import inspect

from torch import nn

from nas.ops.cells import AvgPool, MaxPool, SepConv, Skip, Zero
from nas.ops.classic import (Activation, BasicBlock, Bottleneck, ConvNeXtBlock, DenseBlock, DepthwiseSeparable, Fire,
                             GlobalPool, Inception, Inception3, Linear, NormConv, SeparableConv, ShuffleUnit,
                             Transition, XceptionBlock)
from nas.ops.conv import Conv, DepthwiseConv, FactorizedConv
from nas.ops.head import Classifier, Norm
from nas.ops.mobile import InvertedResidual, SqueezeExcite

REGISTRY: dict[str, type[nn.Module]] = {
    "conv": Conv,
    "dwconv": DepthwiseConv,
    "fac_conv": FactorizedConv,
    "sep": SepConv,
    "avgpool": AvgPool,
    "maxpool": MaxPool,
    "skip": Skip,
    "zero": Zero,
    "ir": InvertedResidual,
    "se": SqueezeExcite,
    "classifier": Classifier,
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "dense": DenseBlock,
    "transition": Transition,
    "fire": Fire,
    "inception": Inception,
    "shuffle": ShuffleUnit,
    "convnext": ConvNeXtBlock,
    "ln_conv": NormConv,
    "dwsep": DepthwiseSeparable,
    "pool": GlobalPool,
    "linear": Linear,
    "norm": Norm,
    "inception3": Inception3,
    "sepconv": SeparableConv,
    "xception": XceptionBlock,
    "act": Activation,
}


def constructor_args(spec: dict, bn: dict | None = None) -> dict:
    """The keyword arguments of the op's class for a complete spec (plus BN settings it accepts)."""
    cls = REGISTRY[spec["op"]]
    accepted = inspect.signature(cls.__init__).parameters
    args = {k: v for k, v in spec.items() if k != "op" and k in accepted}
    for key, value in (bn or {}).items():
        name = f"bn_{key}"
        if name in accepted:
            args[name] = value
    return args


def make(spec: dict, bn: dict | None = None) -> nn.Module:
    return REGISTRY[spec["op"]](**constructor_args(spec, bn))
