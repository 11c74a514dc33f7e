"""The classifier head: global average pool, dropout, linear."""
from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """`classifier`: pool to 1×1, flatten, dropout, linear to `c` (= the number of classes)."""

    def __init__(self, c_in: int, c: int, dropout: float = 0.0, bias: bool = True,
                 bn_eps: float = 1e-5, bn_momentum: float = 0.1):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in, c, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))
