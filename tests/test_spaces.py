"""The search spaces grown from the zoo's blocks: MobileNetV3-style, MnasNet, ProxylessNAS."""

import pytest
import torch

import nas
from nas.cost.flops import count_model
from nas.cost.lut import CostTable


def test_mobilenetv3_space_has_per_layer_kernel_expansion_and_se(spaces):
    space = nas.load(spaces / "mobilenetv3.yaml")
    names = list(space.choices())
    assert len(names) == 14 * 3 and "stages.3.layers.2.se" in names
    assert space.size() == 12 ** 14
    assert list(space.choices()["stages.1.layers.0.se"]) == ["0.0", "0.25"]


def test_mnasnet_space_shares_choices_per_stage(spaces):
    space = nas.load(spaces / "mnasnet.yaml")
    choices = space.choices()
    assert {"stages.1.k", "stages.1.e", "stages.1.se", "stages.1.c", "stages.1.n"} <= set(choices)
    assert not any(".layers." in name for name in choices)
    assert space.size() == (2 * 2 * 2 * 3 * 3) ** 5 * (2 * 2 * 2 * 3)
    arch = space.resolve(dict(space.sample(0), **{"stages.2.n": 4, "stages.2.k": 5, "stages.2.c": 48}))
    layers = arch.plan().stages[2]
    assert len(layers) == 4 and {u.spec["k"] for u in layers} == {5} and layers[-1].out_shape[0] == 48


def test_proxyless_space_first_layers_cannot_skip(spaces):
    space = nas.load(spaces / "proxyless.yaml")
    choices = space.choices()
    assert len(choices) == 21
    assert "skip" not in choices["stages.2.layers.0"] and "skip" in choices["stages.2.layers.1"]
    assert space.size() == 6 ** 6 * 7 ** 15


@pytest.mark.slow  # a whole space's table: seconds (MnasNet's has the most entries)
@pytest.mark.parametrize("name", ["mobilenetv3", "mnasnet", "proxyless"])
def test_samples_run_and_cost_table_is_exact(spaces, name):
    space = nas.load(spaces / f"{name}.yaml").with_input(size=32).with_classes(10)  # 32²: the stride-32 minimum
    table = CostTable(space)
    for seed in range(4):
        picks = space.sample(seed)
        arch = space.resolve(picks)
        model = nas.build(arch).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
        full = count_model(model, arch.plan().input_shape).total
        est = table.estimate(picks)
        assert (est.params, est.flops) == (full.params, full.flops)  # whole multiply-adds: exact
