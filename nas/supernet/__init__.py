"""Differentiable search: the supernet of a space (mixed ops), the expected cost, the bi-level DNAS/DARTS loop
and the derivation of architectures from the learned logits.

`STRATEGY` (the options of `strategy: dnas`) and `run_dnas` (what `nas search` calls) are imported on first
use: they need the recipe module, the rest of the package does not.
"""
from nas.supernet.supernet import Supernet

__all__ = ["Supernet", "STRATEGY", "run_dnas"]


def __getattr__(name: str):
    if name in ("STRATEGY", "run_dnas"):
        from nas.supernet import strategy

        return getattr(strategy, name)
    raise AttributeError(f"module 'nas.supernet' has no attribute {name!r}")
