"""Cost model: the per-choice table agrees with fvcore's full count; latency is measured."""
import pytest

import nas
from nas.cost import count_arch
from nas.cost.flops import count_model
from nas.cost.latency import measure_latency
from nas.cost.lut import CostTable


def _agree(space, samples):
    table = CostTable(space)
    worst = 0.0
    for seed in range(samples):
        picks = space.sample(1000 + seed)
        est = table.estimate(picks)
        arch = space.resolve(picks)
        full = count_model(nas.build(arch), arch.plan().input_shape).total
        assert est.params == full.params
        worst = max(worst, abs(est.flops / full.flops - 1))
    return worst


@pytest.mark.slow
def test_fbnet_table_equals_fvcore_for_50_architectures(spaces):
    assert _agree(nas.load(spaces / "fbnet.yaml"), 50) <= 0.005


@pytest.mark.slow
def test_nasnet_table_equals_fvcore_for_50_architectures(spaces):
    # The real NASNet space (N = 4, F = 44) at 96×96 keeps the 50 full fvcore counts affordable.
    assert _agree(nas.load(spaces / "nasnet.yaml").with_input(size=96), 50) <= 0.005


def test_darts_and_depth_width_choices_agree(spaces):
    assert _agree(nas.load(spaces / "darts.yaml"), 5) <= 0.005
    text = (spaces / "fbnet.yaml").read_text()
    text = text.replace("{block: $tbs, c: 32, n: 4, s: 2}", "{block: $tbs, c: {choice: [24, 32, 40]}, n: {choice: [2, 3, 4]}, s: 2}")
    text = text.replace("{block: $tbs, c: 64, n: 4, s: 2}", "{block: $tbs, shared: true, c: 64, n: {choice: [1, 4]}, s: 2}")
    space = nas.loads(text).with_input(size=64)
    assert "stages.2.c" in space.choices() and "stages.3.block" in space.choices()
    assert _agree(space, 12) <= 0.005


def test_table_is_a_sum_of_lookups(spaces):
    table = CostTable(nas.load(spaces / "fbnet.yaml"))
    assert len(table) == 22 * 9
    assert {t.name for t in table.terms} == {f"stages.{i}.layers.{j}" for i, n in enumerate([1, 4, 4, 4, 4, 4, 1])
                                             for j in range(n)}
    picks = {name: "skip" for name in table.space.choices()}
    cost = table.estimate(picks)
    layers = sum(t.table[("skip",)].flops for t in table.terms)
    assert cost.flops == table.fixed.flops + layers


def test_per_unit_counts_sum_to_the_total(spaces):
    cost = count_arch(nas.load(spaces / "efficientnet_b0.yaml").with_input(size=64), per_unit=True)
    assert sum(c.flops for _, c in cost.units) == pytest.approx(cost.total.flops)
    assert sum(c.params for _, c in cost.units) == cost.total.params


def test_latency_is_measured():
    import torch

    ms = measure_latency(torch.nn.Conv2d(3, 8, 3), (3, 32, 32), "cpu", warmup=1, runs=3)
    assert ms > 0


def test_latency_table_adds_measured_op_latencies(spaces):
    space = nas.load(spaces / "fbnet.yaml").with_input(size=32).with_classes(10)
    table = CostTable(space, latency_device="cpu")
    picks = space.sample(0)
    est = table.estimate(picks)
    entries = [t.table[t.key_of(picks)] for t in table.terms]
    assert all(e.latency_ms > 0 for e in entries) and table.fixed.latency_ms > 0
    assert est.latency_ms == pytest.approx(table.fixed.latency_ms + sum(e.latency_ms for e in entries))
    assert est.flops == CostTable(space).estimate(picks).flops


def test_flops_convention_counts_only_multiply_adds_of_conv_linear_matmul():
    """Norms, pooling, upsampling and elementwise ops count 0; a conv and a linear count exactly k²·c_in·c_out·H·W
    and in·out (the convention of the EfficientNet/FBNet/NASNet papers, `MULTIPLY_ADD_OPS`)."""
    import torch
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
