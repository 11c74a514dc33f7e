"""The expected cost from the cost table, against exact per-architecture costs and Monte-Carlo sampling."""
from __future__ import annotations

import itertools
import math
import statistics

import pytest
import torch

import nas.dsl as dsl
from nas.builder import build
from nas.cost import Cost, count_model
from nas.dsl.errors import SpecError
from nas.supernet.expected import ExpectedCost, cost_extremes, metric_of
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


# Cells whose nodes may or may not read h0/h1: node 0 reads one of them through keys that are not the states'
# names, node 1 can avoid h0 (in0) and h1 (in1); a one-option set is a choice too, certain. The reduction cell
# reads h1 only, so whether the cell before it is computed depends on the next normal cell's picks; the last
# two cells read one of their inputs through their concat list only.
RESTRICTED_INPUTS = """
name: restricted_inputs
input: {channels: 3, size: 8}
classes: 4
choices:
  ops: {sep3: {op: sep, k: 3}, pool: {op: avgpool, k: 3}}
  only_sep: {sep3: {op: sep, k: 3}}
  older_or_prev: {older: h0, prev: h1}
stem: [{op: conv, k: 3, c: 6, s: 1, act: none}]
cells:
  normal:
    nodes:
      - {op0: $ops, in0: $older_or_prev}
      - {op0: $only_sep, in0: {choice: [h1, n0]}, op1: {op: sep, k: 3}, in1: {choice: [h0, n0]}}
    concat: nodes
  reduction: {nodes: [{op0: {op: sep, k: 3}, in0: h1}], concat: nodes, reduce: true}
  last: {nodes: [{op0: {op: sep, k: 3}, in0: h1}], concat: [n0, h0]}
  tail: {nodes: [{op0: {op: sep, k: 3}, in0: h0}], concat: [n0, h1]}
body: {pattern: [normal, normal, reduction, normal, last, tail], F: 4}
head: [{op: classifier}]
"""


def _every_arch(space):
    choices = space.choices()
    for combo in itertools.product(*(c.keys for c in choices.values())):
        yield dict(zip(choices, combo))


def _counted(space) -> list[tuple[dict, Cost]]:
    """Every architecture of a small space with its fvcore count (the built network, no cost table)."""
    size = space.doc["input"]["size"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tracing many tiny networks: a second thread only waits (7 s instead of 1 here)
    try:
        return [(a, count_model(build(space.resolve(a)), (space.doc["input"]["channels"], size, size)).total)
                for a in _every_arch(space)]
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def restricted():
    space = dsl.loads(RESTRICTED_INPUTS)
    return space, _counted(space)


@pytest.mark.slow  # counts 16 networks
@pytest.mark.parametrize("metric", ["flops", "params"])
def test_cells_that_may_skip_an_input_expect_the_enumerated_cost(restricted, metric):
    """Σ over every architecture of Π p(pick) × its fvcore count, for two distributions θ."""
    space, counted = restricted
    assert len(counted) == 16 and len({getattr(c, metric) for _, c in counted}) > 4
    expected = ExpectedCost(space, metric=metric)
    for seed in (0, 1):
        probs = {n: p.detach() for n, p in _params(space, seed=seed, scale=2.0).probs().items()}
        truth = sum(math.prod(float(probs[n][space.choices()[n].keys.index(k)]) for n, k in a.items())
                    * getattr(cost, metric) for a, cost in counted)
        assert float(expected(probs)) == pytest.approx(truth, rel=1e-6), seed
    a, cost = counted[5]
    one_hot = {n: torch.nn.functional.one_hot(torch.tensor(c.keys.index(a[n])), len(c)).float()
               for n, c in space.choices().items()}
    assert float(expected(one_hot)) == pytest.approx(getattr(cost, metric), rel=1e-6)


# The stage's width is one choice read by two cost terms, each alone: the stage itself (cheaper when narrow)
# and the fixed skip after it (free when the width already is 16, a projection when it is 8). The two terms
# are cheapest at different picks, so the smallest cost is not the sum of the terms' smallest costs.
SHARED_WIDTH = """
name: shared_width
input: {channels: 3, size: 8}
classes: 4
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {op: ir, k: 3, e: 1, c: {choice: [8, 16]}, n: 1, s: 1}
  - {op: skip, c: 16, n: 1, s: 1}
head: [{op: classifier}]
"""

# Every choice enters one cost term alone (a block per layer): the extremes add up term by term (none is 0).
PER_LAYER = """
name: per_layer
input: {channels: 3, size: 8}
classes: 4
choices:
  blocks: {k3: {op: ir, k: 3, e: 1}, k5_e3: {op: ir, k: 5, e: 3}, k3_e6: {op: ir, k: 3, e: 6}}
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {block: $blocks, c: 8, n: 2, s: 1}
head: [{op: classifier}]
"""


# One term reads two choices (the layer's kernel and expansion) that no other term reads: still independent.
PAIRED = PER_LAYER.replace("{block: $blocks, c: 8, n: 2, s: 1}",
                           "{op: ir, shared: true, k: {choice: [3, 5]}, e: {choice: [1, 6]}, c: 8, n: 1, s: 1}")


@pytest.mark.parametrize("text, exact", [(SHARED_WIDTH, False), (PER_LAYER, True), (PAIRED, True)])
def test_cost_extremes_are_the_smallest_and_largest_architecture(text, exact):
    """Against the fvcore counts of every architecture; `exact` only where the terms are independent."""
    space = dsl.loads(text)
    flops = [cost.flops for _, cost in _counted(space)]
    assert cost_extremes(ExpectedCost(space)) == (pytest.approx(min(flops), rel=1e-9),
                                                  pytest.approx(max(flops), rel=1e-9), exact)


def test_metric_of_reads_latency_only_where_it_was_measured():
    assert metric_of(Cost(100.0, 7, latency_ms=2.5), "latency") == 2.5
    assert metric_of(Cost(100.0, 7, latency_ms=2.5), "params") == 7.0
    with pytest.raises(ValueError, match="no latency"):
        metric_of(Cost(100.0, 7), "latency")


def test_latency_is_measured_only_for_a_latency_cost():
    assert ExpectedCost(dsl.loads(PER_LAYER), metric="flops", latency_device="cpu").table.fixed.latency_ms is None


def test_a_dead_first_cell_costs_nothing_at_its_one_hot_distribution():
    """Normal cells read only h1 and the reduction cell only h0, so nothing reads the first cell: the
    expectation at this architecture's one-hot distribution is its fvcore count, the dead cell left out."""
    space = dsl.loads(TINY_DARTS)
    inputs = {"normal": [("h1", "h1"), ("n0", "n0"), ("n1", "n0")],
              "reduction": [("h0", "h0"), ("n0", "n0"), ("n0", "n1")]}
    assignment = {}
    for cname, nodes in inputs.items():
        for j, pair in enumerate(nodes):
            for t, source in enumerate(pair):
                assignment[f"cells.{cname}.nodes.{j}.in{t}"] = source
                assignment[f"cells.{cname}.nodes.{j}.op{t}"] = ("sep_conv_3x3", "max_pool_3x3")[t]
    arch = space.resolve(assignment)
    assert [c.live for c in arch.plan().cells] == [False, True, True]
    one_hot = {n: torch.nn.functional.one_hot(torch.tensor(c.keys.index(assignment[n])), len(c)).float()
               for n, c in space.choices().items()}
    truth = count_model(build(arch), (3, 16, 16)).total.flops
    assert float(ExpectedCost(space)(one_hot)) == pytest.approx(truth, rel=1e-6)
