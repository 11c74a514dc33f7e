"""The classifier head: global average pool, dropout, linear."""
from __future__ import annotations

import torch
from torch import nn

from nas.ops.common import make_act


class Classifier(nn.Module):
    """`classifier`: pool to 1×1, flatten, optional LayerNorm, dropout, linear to `c` (= the number
    of classes)."""

    def __init__(self, c_in: int, c: int, dropout: float = 0.0, bias: bool = True,
                 norm: str = "none", linear: bool = True, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        # ConvNeXt's head normalizes the pooled features
        self.norm = nn.LayerNorm(c_in, eps=1e-6) if norm == "layernorm" else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        # `linear: false` (SqueezeNet): the last conv already has one channel per class
        self.fc = nn.Linear(c_in, c, bias=bias) if linear else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.norm(torch.flatten(self.pool(x), 1))))


class Norm(nn.Module):
    """`norm`: batch norm + activation."""

    def __init__(self, c_in: int, c: int, act: str = "relu", bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(c_in, eps=bn_eps, momentum=bn_momentum)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))
