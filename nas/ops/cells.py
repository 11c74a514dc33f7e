"""NASNet/DARTS cell ops: separable and dilated conv, pools, identity/skip, zero, factorized reduction."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.ops.common import ConvBNAct, same_padding


class SepConv(nn.Module):
    """`sep`: (ReLU, k×k depthwise, 1×1 pointwise, BN) × `repeat`; stride on the first depthwise.

    `repeat: 2` is NASNet/DARTS's sep_conv; `dilation: 2, repeat: 1` is DARTS's dil_conv.
    """

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, dilation: int = 1,
                 repeat: int = 2, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                 affine: bool = True):
        super().__init__()
        layers = []
        for i in range(repeat):
            out = c if i == repeat - 1 else c_in
            pad = same_padding(k, dilation)
            stride = s if i == 0 else 1
            depthwise = nn.Conv2d(c_in, c_in, k, stride, pad, dilation=dilation, groups=c_in,
                                  bias=False)
            layers += [nn.ReLU(), depthwise, nn.Conv2d(c_in, out, 1, bias=False),
                       nn.BatchNorm2d(out, eps=bn_eps, momentum=bn_momentum, affine=affine)]
        self.ops = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class AvgPool(nn.Module):
    """`avgpool`: k×k average pool; padded positions are not counted."""

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, p: int | None = None,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        padding = same_padding(k) if p is None else p
        self.pool = nn.AvgPool2d(k, s, padding, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class MaxPool(nn.Module):
    """`maxpool`: k×k max pool."""

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, p: int | None = None,
                 ceil: bool = False, bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.pool = nn.MaxPool2d(k, s, same_padding(k) if p is None else p, ceil_mode=ceil)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two stride-2 1×1 convs, one shifted by a pixel,
    concatenated."""

    def __init__(self, c_in: int, c: int, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
                 affine: bool = True):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_a = nn.Conv2d(c_in, c // 2, 1, 2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c - c // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        # padding keeps odd sizes matching the first path
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


class Skip(nn.Module):
    """`skip`: identity, or a reshaping path when stride or width change (1×1 conv or factorized
    reduce)."""

    def __init__(self, c_in: int, c: int, s: int = 1, reduce: str = "conv",
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1, affine: bool = True):
        super().__init__()
        bn = dict(bn_eps=bn_eps, bn_momentum=bn_momentum, affine=affine)
        if s == 1 and c_in == c:
            self.path = nn.Identity()
        elif reduce == "factorized" and s == 2:
            self.path = FactorizedReduce(c_in, c, **bn)
        elif reduce == "factorized":
            self.path = ConvBNAct(c_in, c, 1, s, preact=True, **bn)
        else:
            self.path = ConvBNAct(c_in, c, 1, s, act="relu", **bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.path(x)


class Zero(nn.Module):
    """`zero`: DARTS's 'none' — zeros of the output shape, so a node may ignore an input."""

    def __init__(self, c_in: int, c: int, s: int = 1, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.c, self.s = c, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        return x.new_zeros(n, self.c, (h - 1) // self.s + 1, (w - 1) // self.s + 1)
