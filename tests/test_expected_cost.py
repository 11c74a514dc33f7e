"""The expected cost from the cost table, against exact per-architecture costs and Monte-Carlo sampling."""
from __future__ import annotations

import statistics

import pytest
import torch

import nas.dsl as dsl
from nas.dsl.errors import SpecError
from nas.supernet.expected import ExpectedCost
from nas.supernet.mixed import ArchParams
from test_supernet import TINY_DARTS, TINY_MNAS, TINY_NASNET

SPACES = {"fbnet": lambda: dsl.load("search_spaces/fbnet.yaml").with_input(size=32).with_classes(10).with_width(0.5),
          "mnas": lambda: dsl.loads(TINY_MNAS), "darts": lambda: dsl.loads(TINY_DARTS)}


@pytest.fixture(scope="module", params=list(SPACES))
def case(request):
    space = SPACES[request.param]()
    return space, ExpectedCost(space)


def _params(space, seed: int, scale: float) -> ArchParams:
    arch = ArchParams({n: c.keys for n, c in space.choices().items()})
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in arch.names():
            arch[name].copy_(torch.randn(arch[name].shape, generator=gen) * scale)
    return arch


def test_one_hot_probabilities_give_the_exact_cost(case):
    """At a one-hot distribution the expectation is the architecture's own cost (dead cells included)."""
    space, expected = case
    for seed in range(12):
        assignment = space.sample(seed)
        probs = {n: torch.nn.functional.one_hot(torch.tensor(c.keys.index(assignment[n])), len(c)).float()
                 for n, c in space.choices().items()}
        assert float(expected(probs)) == pytest.approx(expected.exact(assignment), rel=1e-6), seed


def test_expected_cost_matches_sampling_the_table(case):
    space, expected = case
    arch = _params(space, seed=7, scale=1.5)
    value = float(expected(arch.probs()).detach())
    gen = torch.Generator().manual_seed(0)
    costs = [expected.exact(arch.draw(gen)) for _ in range(1500)]
    error = statistics.stdev(costs) / len(costs) ** 0.5
    assert abs(value - statistics.mean(costs)) < 4 * error


def test_expected_cost_is_differentiable(case):
    space, expected = case
    arch = _params(space, seed=3, scale=1.0)
    expected(arch.probs()).backward()
    assert any(arch[n].grad is not None and arch[n].grad.abs().sum() > 0 for n in arch.names())


def test_unknown_cost_and_unused_concat_are_refused():
    with pytest.raises(SpecError, match="unknown cost 'energy'"):
        ExpectedCost(dsl.loads(TINY_MNAS), metric="energy")
    with pytest.raises(SpecError, match="unused nodes"):
        ExpectedCost(dsl.loads(TINY_NASNET))
