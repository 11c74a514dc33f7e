"""Cost model: the per-choice table agrees with fvcore's full count; latency is measured."""

from pathlib import Path

import pytest
import torch

import nas
from nas.cost import count_arch
from nas.cost.flops import count_model
from nas.cost.latency import measure_latency
from nas.cost.lut import CostTable


def _assert_table_equals_full_count(space, samples, table=None):
    """The table's sum for sampled architectures is fvcore's count of the built network, to the multiply-add: the
    table is per-unit fvcore counts, so any difference is a bug (a unit counted in the wrong context, a missed op)."""
    table = table or CostTable(space)
    for picks in samples:
        est = table.estimate(picks)
        arch = space.resolve(picks)
        full = count_model(nas.build(arch), arch.plan().input_shape).total
        assert (est.flops, est.params) == (full.flops, full.params), picks


def _covering_samples(space, as_many_as: int) -> list[dict]:
    """Samples of seeds 1000-1399 picked greedily by the (choice, option) pairs they draw, until they draw at least
    as many as the first `as_many_as` seeds do: fewer networks to count (each count costs ~1 s) for that coverage."""
    choices = space.choices()
    pool = [space.sample(1000 + seed) for seed in range(400)]

    def drawn(picks):
        return {(name, picks[name]) for name in choices}

    target = len(set().union(*map(drawn, pool[:as_many_as])))
    chosen, covered = [], set()
    while len(covered) < target:
        best = max(pool, key=lambda picks: len(drawn(picks) - covered))
        chosen.append(best)
        covered |= drawn(best)
    assert len(chosen) < as_many_as  # else the first seeds would do
    return chosen


@pytest.mark.slow
def test_fbnet_table_equals_fvcore_for_sampled_architectures(spaces):
    space = nas.load(spaces / "fbnet.yaml")
    _assert_table_equals_full_count(space, _covering_samples(space, 20))  # 12 samples


@pytest.mark.slow
def test_nasnet_table_equals_fvcore_for_sampled_architectures(spaces):
    # The real NASNet space (N = 4, F = 44) at 96×96 keeps the full fvcore counts affordable; 9 samples draw
    # every op of the space many times over (5 slots × 10 nodes × 2 cell types each).
    space = nas.load(spaces / "nasnet.yaml").with_input(size=96)
    _assert_table_equals_full_count(space, _covering_samples(space, 12))


def _depth_width_space(spaces, size):
    """FBNet with a width and a depth choice in stage 2 and one shared block over a depth choice in stage 3."""
    text = (spaces / "fbnet.yaml").read_text()
    text = text.replace("{block: $tbs, c: 32, n: 4, s: 2}", "{block: $tbs, c: {choice: [24, 32, 40]}, n: {choice: [2, 3, 4]}, s: 2}")
    text = text.replace("{block: $tbs, c: 64, n: 4, s: 2}", "{block: $tbs, shared: true, c: 64, n: {choice: [1, 4]}, s: 2}")
    space = nas.loads(text).with_input(size=size)
    assert "stages.2.c" in space.choices() and "stages.3.block" in space.choices()
    return space


@pytest.fixture(scope="module")
def depth_width():
    """The depth/width space at 64² and its table, built once for the tests below (neither changes them)."""
    space = _depth_width_space(Path(__file__).resolve().parent.parent / "search_spaces", 64)
    return space, CostTable(space)


# Every width and depth of stage 2 twice (six of its nine pairs) and each depth of the shared stage 3 three times:
# a unit counted at the wrong width or a switched-off layer still in the sum changes the count of these samples.
DEPTH_WIDTH_PICKS = [{"stages.2.c": c, "stages.2.n": n, "stages.3.n": m}
                     for c, n, m in [("24", "2", "1"), ("24", "4", "4"), ("32", "3", "1"), ("32", "2", "4"),
                                     ("40", "4", "1"), ("40", "3", "4")]]


@pytest.mark.slow  # fvcore counts of ten networks: seconds
def test_darts_and_depth_width_tables_equal_the_fvcore_count(spaces, depth_width):
    darts = nas.load(spaces / "darts.yaml")
    _assert_table_equals_full_count(darts, _covering_samples(darts, 5))  # 4 samples
    space, table = depth_width
    assert all(key in list(space.choices()[name]) for over in DEPTH_WIDTH_PICKS for name, key in over.items())
    _assert_table_equals_full_count(space, [dict(space.sample(1000 + i), **over)
                                            for i, over in enumerate(DEPTH_WIDTH_PICKS)], table)


def test_estimate_takes_option_values_and_an_assignment_without_its_inactive_layers(depth_width):
    """An assignment may give a choice's value (24) instead of its key ('24'), and may leave out the layers a depth
    pick switches off: the estimate is the same as for the full assignment of keys."""
    space, table = depth_width
    choices = space.choices()
    for seed in range(6):
        keys = space.sample(seed)
        expected = table.estimate(keys)
        values = dict(keys, **{name: choices[name].values[keys[name]] for name in ("stages.2.c", "stages.2.n")})
        assert isinstance(values["stages.2.c"], int) and table.estimate(values) == expected
        depth = int(keys["stages.2.n"])
        active = {name: key for name, key in keys.items()
                  if not (name.startswith("stages.2.layers.") and int(name.rsplit(".", 1)[1]) >= depth)}
        assert (len(active) < len(keys)) == (depth < 4)
        assert table.estimate(active) == expected


def test_table_of_the_all_skip_network_equals_its_full_count(spaces):
    """Every layer at `skip` (the thinnest network of the space) against fvcore's count of the built network."""
    space = nas.load(spaces / "fbnet.yaml").with_input(size=64)
    table = CostTable(space)
    assert len(table) == 22 * 9
    assert {t.name for t in table.terms} == {f"stages.{i}.layers.{j}" for i, n in enumerate([1, 4, 4, 4, 4, 4, 1])
                                             for j in range(n)}
    picks = {name: "skip" for name in space.choices()}
    arch = space.resolve(picks)
    full = count_model(nas.build(arch), arch.plan().input_shape).total
    assert (table.estimate(picks).flops, table.estimate(picks).params) == (full.flops, full.params)


@pytest.mark.slow  # counts a NASNet and B0 with fvcore's logging on
def test_counting_logs_nothing(spaces, caplog):
    """fvcore reports ops it has no handle for (adds, activations) and modules never called (a NASNet cell input
    that no node reads) through logging: counting must stay quiet, our convention already decides what counts."""
    import logging

    space = nas.load(spaces / "nasnet.yaml").with_input(size=32).with_depth(0.5)
    dead = next(a for a in (space.resolve(space.sample(s)) for s in range(1000))
                if not all(cell.live for cell in a.plan().cells))
    with caplog.at_level(logging.DEBUG):
        for arch in (dead, nas.zoo.load("efficientnet_b0").with_input(size=32)):
            count_model(nas.build(arch), arch.plan().input_shape)
    assert not [r for r in caplog.records if r.name.startswith("fvcore")], caplog.text[:2000]


def test_per_unit_counts_sum_to_the_total(spaces):
    cost = count_arch(nas.load(spaces / "efficientnet_b0.yaml").with_input(size=64), per_unit=True)
    assert sum(c.flops for _, c in cost.units) == cost.total.flops  # whole multiply-adds, far below 2^53
    assert sum(c.params for _, c in cost.units) == cost.total.params


class _Sleeper(torch.nn.Module):
    """Takes a known time per call on a stand-in clock (the third call much longer): what a median of the timed
    runs must give, exactly and whatever the machine's load."""

    def __init__(self):
        super().__init__()
        self.calls, self.shapes, self.training_seen, self.now = 0, set(), set(), 0.0

    def clock(self) -> float:
        return self.now

    def forward(self, x):
        self.calls += 1
        self.shapes.add(tuple(x.shape))
        self.training_seen.add(self.training)
        self.now += 0.5 if self.calls == 3 else 0.02  # one slow timed run: a median ignores it, a mean would not
        return x


def test_latency_is_the_median_of_the_timed_runs_after_warmup(monkeypatch):
    import nas.cost.latency as latency

    module = _Sleeper()
    monkeypatch.setattr(latency.time, "perf_counter", module.clock)
    ms = measure_latency(module, (3, 8, 8), "cpu", batch=2, warmup=2, runs=5)
    assert module.calls == 7 and module.shapes == {(2, 3, 8, 8)} and module.training_seen == {False}
    assert ms == pytest.approx(20.0)  # the 500 ms run is dropped by the median (a mean would give 116 ms)


def test_latency_table_adds_the_latency_of_each_unit(spaces, monkeypatch):
    """With a stand-in for the clock (each op's 'latency' is its parameter count / 1000), a table estimate must be
    the whole built network's parameter count / 1000: every unit measured once, chosen or fixed."""
    import nas.cost.latency as latency
    import nas.cost.lut as lut
    from nas.cost.flops import param_count

    monkeypatch.setattr(lut, "_LATENCY", {})
    monkeypatch.setattr(latency, "time_forward", lambda modules, shape, timing: param_count(modules[0]) / 1000)
    space = nas.load(spaces / "fbnet.yaml").with_input(size=64)  # the tests above counted its units' FLOPs
    table = CostTable(space, latency_device="cpu")
    for seed in range(3):
        picks = space.sample(seed)
        est = table.estimate(picks)
        full = param_count(nas.build(space.resolve(picks)))
        assert est.latency_ms == pytest.approx(full / 1000, rel=1e-12) and est.params == full


def test_flops_convention_counts_only_multiply_adds_of_conv_linear_matmul():
    """Norms, pooling, upsampling and elementwise ops count 0; a conv and a linear count exactly k²·c_in·c_out·H·W
    and in·out (the convention of the EfficientNet/FBNet/NASNet papers, `MULTIPLY_ADD_OPS`)."""
    from torch import nn

    free = nn.Sequential(nn.BatchNorm2d(8), nn.GroupNorm(2, 8), nn.InstanceNorm2d(8), nn.ReLU(), nn.Hardswish(),
                         nn.Upsample(scale_factor=2, mode="bilinear"), nn.Upsample(scale_factor=0.5),
                         nn.MaxPool2d(2), nn.AvgPool2d(1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(8))
    assert count_model(free, (8, 6, 6)).total.flops == 0
    conv = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
    assert count_model(conv, (8, 6, 6)).total.flops == 3 * 3 * 8 * 4 * 6 * 6 + 4 * 10
    # the published count of MobileNetV2 (300M): 300,774,272 once the norms and the pool stop counting
    assert count_arch(nas.zoo.load("mobilenetv2")).total.flops == 300_774_272


def test_counting_an_uncached_unit_leaves_torchs_generator_alone():
    """Counting builds the op (FLOPs and measured latency alike), which draws from torch's global generator on a
    cache miss only: a seeded run must not depend on what the process counted before."""
    from nas.cost.latency import Timing
    from nas.cost.lut import _with_latency

    arch = nas.dsl.loads("name: odd\ninput: {channels: 3, size: 7}\nclasses: 3\n"  # no other test counts these
                         "stem: [{op: conv, k: 3, c: 5, s: 1}]\nstages: [{op: ir, k: 3, e: 1, c: 5, n: 1, s: 1}]\n"
                         "head: [{op: classifier}]\n")
    unit = arch.plan().units()[0]
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    cost = nas.cost.flops.unit_cost(unit.spec, unit.in_shape)
    _with_latency(cost, unit, Timing("cpu", warmup=0, repeats=1, copies=2))
    assert torch.equal(torch.rand(3), expected)
