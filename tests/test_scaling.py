"""Compound scaling: rounding rules, formula vs official table, the paper's counts, bad input."""
import pytest

import nas
from nas import scaling
from nas.cli import main
from nas.cost import count_arch
from nas.dsl.transform import round_channels, round_repeats

# Exact parameter counts of faithful builds (timm / torchvision efficientnet_b0…b7).
FAITHFUL_PARAMS = [5288548, 7794184, 9109994, 12233232, 19341616, 30389784, 43040704, 66347960]
# The paper's Table 2 rounds FLOPs to two digits; for B3, B4, B5 and B7 faithful builds count 3.5–7% more
# than printed (REFERENCES.md). There we compare with torchvision's published GFLOPS of the same models.
TORCHVISION_GFLOPS = {3: 1.83, 4: 4.39, 5: 10.27, 7: 37.75}


@pytest.fixture(scope="module")
def b0():
    return nas.zoo.load("b0")


def test_rounding_rules_on_known_values():
    # multiples of 8, never below 8, bumped when rounding loses more than 10%
    assert [round_channels(c * 1.1) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == \
        [32, 16, 24, 48, 88, 120, 208, 352, 1408]
    assert [round_channels(c * 2.0) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == \
        [64, 32, 48, 80, 160, 224, 384, 640, 2560]
    assert round_channels(4) == 8 and round_channels(11) == 16  # 11 → 8 would lose 27%
    assert [round_repeats(n, 3.1) for n in (1, 2, 2, 3, 3, 4, 1)] == [4, 7, 7, 10, 10, 13, 4]
    assert round_repeats(3, 1.0) == 3 and round_repeats(1, 1.0001) == 2


def test_formula_at_phi_1_matches_official_b2_stages(b0):
    formula = scaling.scale(b0, 1)
    official = scaling.official(b0, 2)
    stages = lambda a: [(r["c"], r["n"]) for r in a.doc["stages"]]  # noqa: E731
    assert stages(formula.arch) == stages(official.arch)
    assert stages(official.arch) == [(16, 2), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 2)]
    assert formula.arch.doc["stem"][0]["c"] == 32 and formula.arch.doc["head"][0]["c"] == 1408
    assert formula.multipliers.depth == pytest.approx(1.2) and formula.multipliers.width == pytest.approx(1.1)


def test_fractional_phi_and_overrides(b0):
    half = scaling.scale(b0, 0.5, alpha=1.3)
    assert half.coefficients == {"alpha": 1.3, "beta": 1.1, "gamma": 1.15}
    assert half.multipliers.depth == pytest.approx(1.3 ** 0.5)
    assert half.size == scaling.round_resolution(224 * 1.15 ** 0.5) == 240


def test_flops_about_double_per_phi(b0):
    base = count_arch(b0).total.flops
    for phi in (1, 2):
        growth = count_arch(scaling.scale(b0, phi).arch).total.flops / base
        assert 0.8 * 2 ** phi < growth < 1.4 * 2 ** phi


@pytest.mark.slow
def test_official_table_reproduces_published_counts(b0):
    for phi in range(8):
        cost = count_arch(scaling.official(b0, phi).arch).total
        paper_params, paper_flops = scaling.PAPER[phi]
        assert cost.params == FAITHFUL_PARAMS[phi]
        assert abs(cost.params / paper_params - 1) < 0.03
        reference = TORCHVISION_GFLOPS.get(phi, paper_flops / 1e9) * 1e9
        assert abs(cost.flops / reference - 1) < 0.03, (phi, cost.flops)


def test_official_dropout_and_names(b0):
    b5 = scaling.official(b0, 5).arch
    assert b5.name == "efficientnet_b5" and b5.doc["input"]["size"] == 456
    assert b5.doc["head"][-1]["dropout"] == 0.4


def test_single_dimension_scaling_of_other_bases():
    mbv2 = nas.zoo.load("mobilenetv2")
    wide = scaling.scale_dimensions(mbv2, width=2.0)
    assert [r["c"] for r in wide.arch.doc["stages"]] == [32, 48, 64, 128, 192, 320, 640]
    assert [r["n"] for r in wide.arch.doc["stages"]] == [r["n"] for r in mbv2.doc["stages"]]
    deep = scaling.scale_dimensions(mbv2, depth=2.0).arch
    assert [r["n"] for r in deep.doc["stages"]] == [2, 4, 6, 8, 6, 6, 2]
    sharp = scaling.scale_dimensions(mbv2, resolution=1.5).arch
    assert sharp.doc["input"]["size"] == 336
    compound = scaling.scale(mbv2, 1)  # a base without a scaling: section uses the paper's coefficients
    assert compound.coefficients == scaling.DEFAULT_COEFFICIENTS


def test_coefficient_grid():
    grid = scaling.coefficient_grid(step=0.05, tolerance=0.1)  # the paper's own triple gives 1.92
    assert (1.2, 1.1, 1.15) in grid
    assert all(min(t) >= 1 and abs(t[0] * t[1] ** 2 * t[2] ** 2 - 2) <= 0.1 for t in grid)
    assert (1.0, 1.0, 1.0) not in grid and len(grid) == len(set(grid))


def test_cli_scale_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "b3.yaml"
    assert main(["scale", "--base", "b0", "--phi", "3", "-o", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert "α^φ = 1.7280" in text and "2^φ = 8.00" in text and "1280 → 1704" in text
    arch = nas.load(out)
    assert arch.name == "efficientnet_b0_phi3" and arch.doc["input"]["size"] == 344


@pytest.mark.parametrize("argv,fragment", [
    (["scale", "--phi", "-1"], "φ must be ≥ 0"),
    (["scale", "--phi", "1", "--beta", "0.9"], "beta must be ≥ 1"),
    (["scale", "--phi", "x"], "expected a number"),
    (["scale", "--official", "--phi", "9"], "integer φ from 0 to 7"),
    (["scale", "--base", "search_spaces/fbnet.yaml", "--phi", "1"], "is a search space"),
    (["scale", "--base", "{cells}", "--phi", "1"], "has no stages to scale"),
    (["scale", "--phi", "1", "--width", "2"], "does not combine"),
    (["scale"], "say how much to scale"),
    (["scale", "--phi", "1e400"], "finite number"),
    (["scale", "--depth", "0"], "depth multiplier must be > 0"),
    (["scale", "--base", "resnet5000", "--phi", "1"], "no file or zoo entry"),
])
def test_cli_bad_input(argv, fragment, tmp_path, capsys):
    space = nas.load("search_spaces/darts.yaml")
    cells = tmp_path / "cells.yaml"
    nas.dump(space.resolve(space.sample(0)), cells)
    assert main([a.format(cells=cells) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and fragment in err, err


def test_resnet50_scales_like_any_base():
    base = nas.zoo.load("resnet50")
    compound = scaling.scale(base, 1)
    assert [r["n"] for r in compound.arch.doc["stages"]] == [4, 5, 8, 4]
    assert [r["c"] for r in compound.arch.doc["stages"]] == [280, 560, 1128, 2256]
    assert compound.size == 256
    wide = scaling.scale_dimensions(base, width=2.0).arch
    assert wide.plan().stages[0][0].spec["c"] == 512


def test_scale_writes_a_standalone_module(tmp_path, capsys):
    out = tmp_path / "b0_half.py"
    assert main(["scale", "--base", "b0", "--phi", "0.5", "--py", str(out)]) == 0
    source = out.read_text()
    compile(source, str(out), "exec")
    assert "class Net(Network)" in source and "efficientnet_b0_phi0p5" in source
