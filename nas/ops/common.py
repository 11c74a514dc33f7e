"""Pieces shared by every op family: activations, conv + BN + activation, drop-path.

Op modules take plain constructor arguments (the op's YAML parameters, `c_in` and the BN settings), so that
`nas.export` can write `Op(c_in=16, c=24, k=3, ...)` as standalone source.
"""
from __future__ import annotations

import torch
from torch import nn


def make_act(name: str | None) -> nn.Module:
    table = {
        "relu": nn.ReLU, "relu6": nn.ReLU6, "swish": nn.SiLU, "hardswish": nn.Hardswish,
        "gelu": nn.GELU, "sigmoid": nn.Sigmoid, "hsigmoid": nn.Hardsigmoid,
    }
    if name in (None, "none"):
        return nn.Identity()
    return table[name]()


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch for a random subset of samples."""
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def same_padding(k: int, dilation: int = 1) -> int:
    """Padding that keeps the size at stride 1 for odd k (the DSL plans shapes by the same rule)."""
    return dilation * (k - 1) // 2


class ConvBNAct(nn.Module):
    """k×k conv, batch norm, activation; `preact` puts the activation first (NASNet/DARTS
    ReLU-Conv-BN). `affine: false` drops the norm's learned scale and shift (DARTS's search
    network)."""

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, p: int | None = None,
                 groups: int = 1, dilation: int = 1, act: str = "relu", bn: bool = True,
                 bias: bool = False, preact: bool = False, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, affine: bool = True):
        super().__init__()
        padding = same_padding(k, dilation) if p is None else p
        self.preact = preact
        self.act = make_act(act)
        self.conv = nn.Conv2d(c_in, c, k, s, padding, dilation=dilation, groups=groups,
                              bias=bias or not bn)
        self.bn = (nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum, affine=affine) if bn
                   else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            return self.bn(self.conv(self.act(x)))
        return self.act(self.bn(self.conv(x)))
