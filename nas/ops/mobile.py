"""Mobile blocks: inverted residual (MobileNetV2 / MBConv / FBNet), squeeze-and-excitation, channel shuffle."""
from __future__ import annotations

import torch
from torch import nn

from nas.dsl.rounding import round_channels
from nas.ops.common import ConvBNAct, drop_path, make_act


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    """`se`: global pool, 1×1 reduce to `ratio`·`base`, activation, 1×1 expand, gate, rescale."""

    def __init__(self, c_in: int, c: int | None = None, ratio: float = 0.25, gate: str = "sigmoid",
                 act: str = "relu", divisor: int = 1, base: int | None = None,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        squeezed = round_channels((base or c_in) * ratio, divisor)
        self.reduce = nn.Conv2d(c_in, squeezed, 1)
        self.act = make_act(act)
        self.expand = nn.Conv2d(squeezed, c_in, 1)
        self.gate = make_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class InvertedResidual(nn.Module):
    """`ir`: 1×1 expand (+ shuffle for group convs) → k×k depthwise → SE → 1×1 project, residual
    when it fits.

    The expand conv is skipped at expansion 1 unless `expand: always` (FBNet's release keeps it)."""

    def __init__(self, c_in: int, c: int, k: int = 3, e: float = 1, s: int = 1, groups: int = 1,
                 se: float = 0.0, se_base: str = "input", se_gate: str = "sigmoid",
                 se_act: str | None = None, se_divisor: int = 1, act: str = "relu",
                 expand: str = "auto", residual: bool = True, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum)
        hidden = max(1, int(round(c_in * e)))
        self.groups = groups
        self.expand = None
        if hidden != c_in or expand == "always":
            self.expand = ConvBNAct(c_in, hidden, 1, groups=groups, act=act, **bn)
        self.dw = ConvBNAct(hidden, hidden, k, s, groups=hidden, act=act, **bn)
        self.se = None
        if se > 0:
            self.se = SqueezeExcite(hidden, ratio=se, gate=se_gate, act=se_act or act,
                                    divisor=se_divisor, base=c_in if se_base == "input" else hidden)
        self.project = ConvBNAct(hidden, c, 1, groups=groups, act="none", **bn)
        self.has_residual = residual and s == 1 and c_in == c
        self.drop_path_rate = 0.0  # set by the training loop (stochastic depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        if self.expand is not None:
            out = self.expand(out)
            if self.groups > 1:
                out = channel_shuffle(out, self.groups)
        out = self.dw(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.has_residual:
            out = x + drop_path(out, self.drop_path_rate, self.training)
        return out
