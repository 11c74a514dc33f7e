"""Plain convolutions: conv, depthwise conv, factorized 1×k-then-k×1 conv."""
from __future__ import annotations

import torch
from torch import nn

from nas.ops.common import ConvBNAct


class Conv(ConvBNAct):
    """`conv`: k×k convolution + BN + activation."""


class DepthwiseConv(ConvBNAct):
    """`dwconv`: k×k depthwise convolution (one filter per channel) + BN + activation."""

    def __init__(self, c_in: int, c: int, k: int = 3, s: int = 1, p: int | None = None,
                 dilation: int = 1, act: str = "relu", bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__(c_in, c, k, s, p, groups=c_in, dilation=dilation, act=act, bn_eps=bn_eps,
                         bn_momentum=bn_momentum)


class FactorizedConv(nn.Module):
    """`fac_conv`: ReLU, 1×k conv, k×1 conv, BN — NASNet's cheaper k×k."""

    def __init__(self, c_in: int, c: int, k: int = 7, s: int = 1, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, affine: bool = True):
        super().__init__()
        self.act = nn.ReLU()
        self.conv_1xk = nn.Conv2d(c_in, c_in, (1, k), (1, s), (0, k // 2), bias=False)
        self.conv_kx1 = nn.Conv2d(c_in, c, (k, 1), (s, 1), (k // 2, 0), bias=False)
        self.bn = nn.BatchNorm2d(c, eps=bn_eps, momentum=bn_momentum, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_kx1(self.conv_1xk(self.act(x))))
