"""Arch → nn.Module: forward passes, module names, EfficientNet-B0 counts, reproducible round trips."""
import pytest
import torch

import nas
from nas.cost import count_arch
from nas.dsl import dumps, loads


def test_efficientnet_b0_matches_the_paper(spaces):
    b0 = nas.load(spaces / "efficientnet_b0.yaml")
    cost = count_arch(b0).total
    assert (cost.params, cost.flops) == (5_288_548, 385_814_752)  # exact: conv/linear multiply-adds only
    # the paper's (Tan & Le 2019, table 2) rounded figures, kept as documentation: 5.3M params, 0.39B FLOPs
    assert round(cost.params / 1e6, 1) == 5.3 and round(cost.flops / 1e9, 2) == 0.39


def test_module_paths_follow_the_plan(spaces):
    space = nas.load(spaces / "fbnet.yaml")
    arch = space.resolve(space.sample(0))
    model = nas.build(arch)
    names = dict(model.named_modules())
    assert all(unit.path in names for unit in arch.plan().units())
    assert "stages.1.layers.3" in names
    cells = nas.load(spaces / "darts.yaml")
    carch = cells.resolve(cells.sample(0))
    cnames = dict(nas.build(carch).named_modules())
    assert all(unit.path in cnames for unit in carch.plan().units())


@pytest.mark.parametrize("name,size", [("fbnet", 64), pytest.param("nasnet", 64, marks=pytest.mark.slow), ("darts", 32)])  # NASNet: seconds
def test_sampled_architectures_run(spaces, name, size):
    space = nas.load(spaces / f"{name}.yaml").with_input(size=size).with_classes(7)
    for seed in range(3):
        arch = space.resolve(space.sample(seed))
        model = nas.build(arch).eval()
        with torch.no_grad():
            out = model(torch.randn(2, 3, size, size))
        assert out.shape == (2, 7) and torch.isfinite(out).all()


@pytest.mark.parametrize("name,size", [("fbnet", 96), pytest.param("nasnet", 64, marks=pytest.mark.slow), ("darts", 32)])  # NASNet: seconds
def test_resolve_dump_load_build_gives_the_same_network(spaces, name, size):
    space = nas.load(spaces / f"{name}.yaml").with_input(size=size)
    arch = space.resolve(space.sample(11))
    again = loads(dumps(arch))
    a, b = nas.build(arch, seed=5).eval(), nas.build(again, seed=5).eval()
    assert sum(p.numel() for p in a.parameters()) == sum(p.numel() for p in b.parameters())
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    c = nas.build(again, seed=6).eval()
    with torch.no_grad():
        assert not torch.equal(a(x), c(x))  # the seed really decides the weights


def test_build_refuses_a_space(spaces):
    with pytest.raises(nas.SpecError, match="search space"):
        nas.build(nas.load(spaces / "fbnet.yaml"))


def test_bn_settings_reach_the_modules(spaces):
    model = nas.build(nas.load(spaces / "efficientnet_b0.yaml"))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
