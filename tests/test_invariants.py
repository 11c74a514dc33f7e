"""Small invariants, each against a number worked out by hand: cost addition, split fractions, drop-path's
expectation, an inverted residual whose projection is zero, a stride where an op has none."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nas
from nas.cost.flops import Cost
from nas.data import _split
from nas.dsl.errors import SpecError
from nas.ops.common import drop_path
from nas.ops.mobile import InvertedResidual


def test_cost_addition():
    assert Cost(10.0, 3) + Cost(5.0, 4) == Cost(15.0, 7, None)  # no latency on either side stays unknown
    assert Cost(1.0, 1, 2.5) + Cost(2.0, 2) == Cost(3.0, 3, 2.5)
    assert Cost(1.0, 1) + Cost(2.0, 2, 0.5) == Cost(3.0, 3, 0.5)
    assert Cost(1.0, 1, 2.5) + Cost(2.0, 2, 0.25) == Cost(3.0, 3, 2.75)
    assert sum([Cost(1.0, 1), Cost(2.0, 2), Cost(4.0, 4)], Cost()) == Cost(7.0, 7)


def test_split_fractions_are_exact_per_class_and_disjoint():
    # 10 classes × 40 samples; test 20% → 8 per class; val 10% of the whole → 4 per class; train the other 28
    y = np.repeat(np.arange(10), 40)
    x = np.arange(400)  # each sample's identity
    (xtr, ytr), (xva, yva), (xte, yte) = _split(x, y, 0.1, 0.2, seed=3)
    for labels, per_class in ((ytr, 28), (yva, 4), (yte, 8)):
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10
    assert sorted(np.concatenate([xtr, xva, xte]).tolist()) == list(range(400))  # a partition
    assert all(y[i] == label for part, labels in ((xtr, ytr), (xva, yva), (xte, yte)) for i, label in zip(part, labels))
    again = _split(x, y, 0.1, 0.2, seed=3)
    assert np.array_equal(again[1][0], xva) and not np.array_equal(_split(x, y, 0.1, 0.2, seed=4)[1][0], xva)


def test_drop_path_keeps_the_expectation_and_drops_whole_samples():
    torch.manual_seed(0)
    x = torch.ones(200_000, 3, 2, 2)
    out = drop_path(x, 0.25, training=True)
    kept = out[:, 0, 0, 0] != 0
    assert torch.all(out[kept] == 1 / 0.75) and torch.all(out[~kept] == 0)  # a sample is kept or dropped whole
    assert torch.all(out == out[:, :1, :1, :1])
    # dropped fraction 0.25 ± 4.5σ (σ = √(0.25·0.75/n) ≈ 0.00097); mean 1 within the same bound
    assert abs((~kept).float().mean().item() - 0.25) < 0.0044
    assert abs(out.mean().item() - 1.0) < 0.0044 / 0.75
    assert drop_path(x, 0.25, training=False) is x and drop_path(x, 0.0, training=True) is x


@pytest.mark.parametrize("e,se", [(1, 0.0), (6, 0.25)])
def test_inverted_residual_with_a_zero_projection_returns_its_input(e, se):
    block = InvertedResidual(8, 8, k=3, e=e, se=se, act="hardswish").eval()
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        assert not torch.allclose(block(x), x)
        block.project.conv.weight.zero_()
        assert torch.equal(block(x), x)  # only the residual is left (BN of zeros is zero at init)
    strided = InvertedResidual(8, 8, k=3, e=e, s=2).eval()
    assert not strided.has_residual


def test_a_stride_on_an_op_without_one_is_refused():
    text = """
name: t
input: {channels: 3, size: 16}
classes: 4
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {op: se, c: 8, n: 1, s: 2}
head: [{op: classifier}]
"""
    with pytest.raises(SpecError, match="stage 0: op 'se' cannot take a stride") as err:
        nas.loads(text)
    assert err.value.where.line == 7
    nas.loads(text.replace("s: 2}", "s: 1}"))  # the same stage without the stride is fine
