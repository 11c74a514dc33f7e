"""Differentiable search: the supernet of a space (mixed ops), the expected cost, the bi-level DNAS/DARTS loop
and the derivation of architectures from the learned logits."""
from nas.supernet.supernet import Supernet

__all__ = ["Supernet"]
