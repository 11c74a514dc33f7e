"""Compound scaling: rounding rules, formula vs official table, the papers' counts, other bases, bad input."""
import json

import pytest

import nas
from nas import scaling
from nas.cli import main
from nas.cost import count_arch
from nas.dsl.transform import round_channels, round_repeats

# Exact parameter counts of faithful builds (timm / torchvision efficientnet_b0…b7).
FAITHFUL_PARAMS = [5288548, 7794184, 9109994, 12233232, 19341616, 30389784, 43040704, 66347960]

# Exact multiply-adds of the same builds (conv and linear layers only; BN, activations and pools count 0),
# pinned after a run: any change to the builds or to the counting convention shows here.
FAITHFUL_FLOPS = [385_814_752, 686_802_832, 993_561_872, 1_827_141_392, 4_393_771_024, 10_266_384_752,
                  19_067_593_536, 37_745_884_192]

# The published figures, kept as documentation of how the exact counts relate to them (GFLOPs, rounded as
# printed). The paper's Table 2 prints two significant digits and for B3–B5 and B7 a faithful build counts
# 2–4.5% more than printed (REFERENCES.md), so where it exists we take torchvision's figure for the same
# network at the same resolution; torchvision counts B2 at 288², not 260², so B2 keeps the paper's 1.0.
PUBLISHED_GFLOPS = {  # φ: (figure, decimals printed, source)
    0: (0.39, 2, "paper = torchvision"),
    1: (0.69, 2, "torchvision (paper 0.70)"),
    2: (1.0, 1, "paper (torchvision counts B2 at 288²)"),
    3: (1.83, 2, "torchvision (paper 1.8)"),
    4: (4.39, 2, "torchvision (paper 4.2: 4.5% low)"),
    5: (10.27, 2, "torchvision (paper 9.9: 3.7% low)"),
    6: (19.07, 2, "torchvision (paper 19)"),
    7: (37.75, 2, "torchvision (paper 37)"),
}

TINY = """\
name: tiny
input: {channels: 3, size: 32}
classes: 10
stem:
  - {op: conv, k: 3, c: 16, s: 1}
stages:
  - {op: ir, k: 3, e: 1, c: 16, n: 1, s: 1}
  - {op: ir, k: 3, e: 4, c: 24, n: 2, s: 2}
head:
  - {op: conv, k: 1, c: 64}
  - {op: classifier, dropout: 0.1}
"""


@pytest.fixture(scope="module")
def b0():
    return nas.zoo.load("b0")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_rounding_rules_on_known_values():
    # multiples of 8, never below 8, bumped when rounding loses more than 10%
    assert [round_channels(c * 1.1) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == \
        [32, 16, 24, 48, 88, 120, 208, 352, 1408]
    assert [round_channels(c * 2.0) for c in (32, 16, 24, 40, 80, 112, 192, 320, 1280)] == \
        [64, 32, 48, 80, 160, 224, 384, 640, 2560]
    assert round_channels(4) == 8 and round_channels(11) == 16  # 11 → 8 would lose 27%
    assert round_channels(16 * 1.1 ** 1.5) == 24  # 18.45 → 16 loses 13%, so one step up
    assert round_channels(20) == 24 and round_channels(17.7) == 16 and round_channels(17.9) == 24  # 16 < 0.9·17.9
    assert [round_repeats(n, 3.1) for n in (1, 2, 2, 3, 3, 4, 1)] == [4, 7, 7, 10, 10, 13, 4]
    assert round_repeats(3, 1.0) == 3 and round_repeats(1, 1.0001) == 2 and round_repeats(5, 1.2) == 6
    assert [scaling.round_resolution(s) for s in (224 * 1.15, 224 * 1.15 ** 0.5, 100, 99.9, 3)] == \
        [256, 240, 104, 96, 8]


def test_formula_at_phi_1_matches_official_b2_stages(b0):
    formula = scaling.scale(b0, 1)
    official = scaling.official(b0, 2)
    stages = lambda a: [(r["c"], r["n"]) for r in a.doc["stages"]]  # noqa: E731
    assert stages(formula.arch) == stages(official.arch)
    assert stages(official.arch) == [(16, 2), (24, 3), (48, 3), (88, 4), (120, 4), (208, 5), (352, 2)]
    for arch in (formula.arch, official.arch):
        assert arch.doc["stem"][0]["c"] == 32 and arch.doc["head"][0]["c"] == 1408
    assert formula.multipliers.depth == pytest.approx(1.2) and formula.multipliers.width == pytest.approx(1.1)
    # only the resolution differs: γ·224 = 257.6 → 256 by the formula, 260 in the released table
    assert (formula.size, official.size) == (256, 260)


def test_fractional_phi_and_overrides(b0):
    half = scaling.scale(b0, 0.5, alpha=1.3)
    assert half.coefficients == {"alpha": 1.3, "beta": 1.1, "gamma": 1.15}
    assert half.multipliers.depth == pytest.approx(1.3 ** 0.5)
    assert half.size == scaling.round_resolution(224 * 1.15 ** 0.5) == 240
    assert half.arch.name == "efficientnet_b0_phi0p5"
    assert scaling.scale(b0, 0).arch.doc["stages"] == b0.doc["stages"]


def test_coefficients_come_from_the_base_file(tiny):
    plain = nas.load(tiny)
    assert scaling.coefficients(plain) == scaling.DEFAULT_COEFFICIENTS  # no scaling: section
    tiny.write_text(TINY + "scaling: {alpha: 1.4, gamma: 1.05, divisor: 4}\n")
    own = nas.load(tiny)
    assert scaling.coefficients(own) == {"alpha": 1.4, "beta": 1.1, "gamma": 1.05}
    assert scaling.coefficients(own, beta=1.2, gamma=1.3) == {"alpha": 1.4, "beta": 1.2, "gamma": 1.3}
    wide = scaling.scale_dimensions(own, width=1.3).arch  # the file's divisor 4: 16·1.3 = 20.8 → 20
    assert [r["c"] for r in wide.doc["stages"]] == [20, 32]


def test_count_is_the_count_of_the_built_network(b0):
    arch = scaling.scale_dimensions(b0, depth=1.3, width=1.2, resolution=0.5).arch
    whole = count_arch(arch).total
    summed = scaling.count(arch)
    assert (summed.params, summed.flops) == (whole.params, whole.flops)


@pytest.mark.slow
def test_compound_scaling_of_b0_for_phi_1_and_2(b0):
    exact = {1: (9_109_994, 859_853_760), 2: (12_255_408, 1_810_522_464)}  # (params, FLOPs), pinned after a run
    for phi in (1, 2):
        rep = scaling.report(scaling.scale(b0, phi))
        assert (rep.base_params, rep.base_flops) == (FAITHFUL_PARAMS[0], FAITHFUL_FLOPS[0])
        assert rep.target_growth == 2 ** phi
        assert rep.result.multipliers.flops_growth == pytest.approx(1.92 ** phi, rel=1e-3)
        assert (rep.params, rep.flops) == exact[phi]
        # rounding repeats up (and widths to multiples of 8) adds a little on top of d·w²·r² (2.23, 4.69)
        assert rep.result.multipliers.flops_growth < rep.flops_growth == exact[phi][1] / FAITHFUL_FLOPS[0]


@pytest.mark.slow
def test_official_table_reproduces_the_faithful_counts(b0):
    for phi in range(8):
        result = scaling.official(b0, phi)
        assert result.size == scaling.OFFICIAL[phi][2]
        cost = scaling.count(result.arch)
        assert (cost.params, cost.flops) == (FAITHFUL_PARAMS[phi], FAITHFUL_FLOPS[phi]), phi


@pytest.mark.parametrize("phi", range(8))
def test_faithful_counts_round_to_the_published_figures(phi):
    """Documentation, not a tolerance on our counts (those are pinned exactly above): each exact count,
    rounded as the reference prints it, is the published figure."""
    figure, decimals, source = PUBLISHED_GFLOPS[phi]
    assert round(FAITHFUL_FLOPS[phi] / 1e9, decimals) == figure, source
    paper_params, _ = scaling.PAPER[phi]
    assert abs(FAITHFUL_PARAMS[phi] / paper_params - 1) < 0.02, phi  # worst: B3 12.23M vs 12M, +1.9%


# The released EfficientNet-B0…B7 (tensorflow/tpu efficientnet_builder.py): width, depth, resolution, dropout.
PUBLISHED = [(1.0, 1.0, 224, 0.2), (1.0, 1.1, 240, 0.2), (1.1, 1.2, 260, 0.3), (1.2, 1.4, 300, 0.3),
             (1.4, 1.8, 380, 0.4), (1.6, 2.2, 456, 0.4), (1.8, 2.6, 528, 0.5), (2.0, 3.1, 600, 0.5)]


@pytest.mark.parametrize("phi", range(8))
def test_official_models_have_the_published_size_dropout_and_stages(b0, phi):
    width, depth, size, dropout = PUBLISHED[phi]
    result = scaling.official(b0, phi)
    assert result.size == size and result.arch.doc["input"]["size"] == size
    assert result.arch.doc["head"][-1]["dropout"] == dropout
    # the published multipliers, applied by the (separately tested) rounding rules, give the same stages
    expected = b0.with_width(width).with_depth(depth)
    assert [(r["c"], r["n"]) for r in result.arch.doc["stages"]] == [(r["c"], r["n"]) for r in expected.doc["stages"]]


def test_coefficients_of_one_are_allowed_below_one_refused(b0):
    """α = 1 (no width growth) is a valid choice, e.g. depth and resolution only; below 1 would shrink."""
    assert scaling.coefficients(b0, alpha=1, beta=1.0, gamma=1) == {"alpha": 1.0, "beta": 1.0, "gamma": 1.0}
    for name in ("alpha", "beta", "gamma"):
        with pytest.raises(nas.SpecError, match=f"{name} must be ≥ 1, got 0.99"):
            scaling.coefficients(b0, **{name: 0.99})


def test_official_dropout_names_and_other_base_sizes(b0, tiny):
    b5 = scaling.official(b0, 5).arch
    assert b5.name == "efficientnet_b5" and b5.doc["input"]["size"] == 456
    assert b5.doc["head"][-1]["dropout"] == 0.4
    small = scaling.official(nas.load(tiny), 7)  # the table's 600 is for a 224 base: 32·600/224 → 88
    assert small.arch.name == "tiny_official_b7" and small.size == 88
    assert [r["n"] for r in small.arch.doc["stages"]] == [4, 7] and small.arch.doc["head"][-1]["dropout"] == 0.5
    for bad in (8, 2.5, -1, True):
        with pytest.raises(nas.SpecError, match="integer φ from 0 to 7"):
            scaling.official(b0, bad)


def test_single_dimension_scaling_of_other_bases():
    mbv2 = nas.zoo.load("mobilenetv2")
    wide = scaling.scale_dimensions(mbv2, width=2.0)
    assert [r["c"] for r in wide.arch.doc["stages"]] == [32, 48, 64, 128, 192, 320, 640]
    assert wide.arch.doc["stem"][0]["c"] == 64 and wide.arch.doc["head"][0]["c"] == 2560
    assert [r["n"] for r in wide.arch.doc["stages"]] == [r["n"] for r in mbv2.doc["stages"]]
    deep = scaling.scale_dimensions(mbv2, depth=2.0).arch
    assert [r["n"] for r in deep.doc["stages"]] == [2, 4, 6, 8, 6, 6, 2]
    sharp = scaling.scale_dimensions(mbv2, resolution=1.5).arch
    assert sharp.doc["input"]["size"] == 336 and sharp.doc["stages"] == mbv2.doc["stages"]
    compound = scaling.scale(mbv2, 1)  # a base without a scaling: section uses the paper's coefficients
    assert compound.coefficients == scaling.DEFAULT_COEFFICIENTS


def test_mobilenetv2_035_matches_the_paper():
    """Table 3 of the MobileNetV2 paper: ×0.35 at 224² has 1.7M params and 59M multiply-adds. That holds
    only because the last conv keeps 1280 channels below width 1.0 (`width: grow` in the zoo file)."""
    from nas.cost import count_arch

    thin = scaling.scale_dimensions(nas.zoo.load("mobilenetv2"), width=0.35).arch
    assert thin.doc["head"][0]["c"] == 1280 and thin.doc["stages"][-1]["c"] == 112
    cost = count_arch(thin).total
    assert (cost.params, cost.flops) == (1_677_128, 59_285_808)  # exact, pinned after a run
    assert (round(cost.params / 1e6, 1), round(cost.flops / 1e6)) == (1.7, 59)  # the paper's figures as printed


@pytest.mark.parametrize("rule,widths", [("scale", (448, 2560)), ("grow", (1280, 2560)), ("fixed", (1280, 1280))])
def test_a_layer_says_how_width_multipliers_apply(rule, widths):
    doc = nas.zoo.load("mobilenetv2").doc
    doc["head"][0]["width"] = rule
    base = nas.zoo.load("mobilenetv2").copy_with(doc)
    assert tuple(base.with_width(w).doc["head"][0]["c"] for w in (0.35, 2.0)) == widths
    assert base.with_width(0.35).doc["stem"][0]["c"] == 16  # layers without a rule scale as always
    doc["head"][0]["width"] = "never"
    with pytest.raises(nas.dsl.errors.SpecError, match="width"):
        nas.zoo.load("mobilenetv2").copy_with(doc).plan()


def test_resnet50_scales_like_any_base():
    base = nas.zoo.load("resnet50")
    compound = scaling.scale(base, 1)
    assert [r["n"] for r in compound.arch.doc["stages"]] == [4, 5, 8, 4]
    assert [r["c"] for r in compound.arch.doc["stages"]] == [280, 560, 1128, 2256]
    assert compound.size == 256
    wide = scaling.scale_dimensions(base, width=2.0).arch
    assert wide.plan().stages[0][0].spec["c"] == 512 and wide.doc["stem"][0]["c"] == 128


# The paper's Table 3 (FLOPs of the baseline → scaled): growth = scaled / baseline, both as printed. Only the
# rows whose multipliers the table states; its MobileNetV2 and ResNet-50 "compound scale" rows give none.
TABLE3 = [  # base, how, multipliers, paper growth
    ("mobilenetv2", "depth", {"depth": 4}, 1.2 / 0.3),
    ("mobilenetv2", "width", {"width": 2}, 1.1 / 0.3),
    ("mobilenetv2", "resolution", {"resolution": 2}, 1.2 / 0.3),
    ("mobilenetv1", "width", {"width": 2}, 2.2 / 0.569),  # the MobileNet paper's 569M baseline
    ("mobilenetv1", "resolution", {"resolution": 2}, 2.2 / 0.569),
    ("mobilenetv1", "compound", {"depth": 1.4, "width": 1.2, "resolution": 1.3}, 2.3 / 0.569),
    ("resnet50", "resolution", {"resolution": 2}, 16.4 / 4.1),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,how,multipliers,paper", TABLE3, ids=[f"{t[0]}-{t[1]}" for t in TABLE3])
def test_table3_growth_of_mobilenets_and_resnet(name, how, multipliers, paper):
    # Table 3 prints two significant digits on both sides (1.2B/0.3B is anything from 3.8× to 4.2×), so 6%.
    # Not checked: ResNet-50 by depth ×4 (paper 3.95×; ours 3.56× — the added blocks are identity blocks,
    # cheaper than each stage's first) and by width ×2 (paper 3.59×; ours 3.93×, every conv widened): the
    # paper does not say how it spread the blocks or which convs it widened.
    growth = scaling.report(scaling.scale_dimensions(nas.zoo.load(name), **multipliers)).flops_growth
    assert abs(growth / paper - 1) < 0.06, (growth, paper)


def test_coefficient_grid():
    grid = scaling.coefficient_grid(step=0.05, tolerance=0.1)  # the paper's own triple gives 1.92
    assert (1.2, 1.1, 1.15) in grid
    assert all(min(t) >= 1 and abs(t[0] * t[1] ** 2 * t[2] ** 2 - 2) <= 0.1 for t in grid)
    assert (1.0, 1.0, 1.0) not in grid and (2.0, 1.0, 1.0) in grid and len(grid) == len(set(grid))
    assert (1.2, 1.1, 1.15) not in scaling.coefficient_grid(step=0.05, tolerance=0.05)
    assert len(scaling.coefficient_grid(step=0.1, tolerance=0.02)) < len(grid)
    with pytest.raises(nas.SpecError, match="the coefficient grid needs step > 0"):
        scaling.coefficient_grid(step=0)


def test_cli_scale_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "b3.yaml"
    assert main(["scale", "--base", "b0", "--phi", "3", "-o", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    assert "α^φ = 1.7280" in text and "2^φ = 8.00" in text and "1280 → 1704" in text and "1 → 2" in text
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary["size"] == 344 and summary["base_params"] == FAITHFUL_PARAMS[0]
    assert summary["params"] == 16350296 and summary["flops"] == 3_253_196_720
    assert summary["flops_growth"] == pytest.approx(3_253_196_720 / FAITHFUL_FLOPS[0], rel=1e-12)
    assert summary["ideal_growth"] < summary["flops_growth"]
    arch = nas.load(out)
    assert arch.name == "efficientnet_b0_phi3" and arch.doc["input"]["size"] == 344
    assert [r["n"] for r in arch.doc["stages"]] == [2, 4, 4, 6, 6, 7, 2]


def test_cli_official_and_single_dimension(tiny, capsys):
    assert main(["scale", "--base", str(tiny), "--official", "--phi", "2"]) == 0
    text = capsys.readouterr().out
    assert "official EfficientNet-B2 table" in text and "dropout 0.3" in text and "16 → 16" in text
    assert main(["scale", "--base", str(tiny), "--depth", "2", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["phi"] is None and summary["target_growth"] is None and summary["name"] == "tiny_d2"
    assert [row["n"] for row in summary["stages"]] == [1, 2, 4, 1]


def test_cli_table(tiny, capsys):
    assert main(["scale", "--base", str(tiny), "--table", "--quiet", "--json"]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out.strip().splitlines()[-1])
    assert [r["phi"] for r in rows] == list(range(8)) and all(r["paper"] is None for r in rows)
    printed = out.strip().rsplit("\n", 1)[0]
    assert "formula d/w/res" in printed and "official d/w/res" in printed and "paper" not in printed
    assert [r["official"]["size"] for r in rows] == [32, 32, 40, 40, 56, 64, 72, 88]
    assert rows[0]["formula"]["params"] == rows[0]["official"]["params"] == rows[0]["formula"]["base_params"]


@pytest.mark.parametrize("argv,fragment", [
    (["scale", "--phi", "-1"], "φ must be ≥ 0"),
    (["scale", "--phi", "1", "--beta", "0.9"], "beta must be ≥ 1"),
    (["scale", "--phi", "1", "--alpha", "-2"], "alpha must be ≥ 1"),
    (["scale", "--phi", "x"], "expected a number"),
    (["scale", "--official", "--phi", "9"], "integer φ from 0 to 7"),
    (["scale", "--official", "--phi", "2.5"], "integer φ from 0 to 7"),
    (["scale", "--base", "search_spaces/fbnet.yaml", "--phi", "1"], "is a search space"),
    (["scale", "--base", "{cells}", "--phi", "1"], "has no stages to scale (a cell network)"),
    (["scale", "--base", "{nostages}", "--phi", "1"], "give either 'stages'"),
    (["scale", "--phi", "1", "--width", "2"], "does not combine"),
    (["scale", "--official", "--phi", "2", "--alpha", "1.3"], "does not combine with --official"),
    (["scale", "--depth", "2", "--gamma", "1.3"], "does not combine with --depth"),
    (["scale", "--table", "--phi", "2"], "does not combine with --phi"),
    (["scale", "--table", "-o", "{tmp}/x.yaml"], "does not combine with -o"),
    (["scale", "--phi", "-1", "-o", "{tmp}/x.yaml"], "φ must be ≥ 0"),
    (["scale"], "say how much to scale"),
    (["scale", "--phi", "1e400"], "finite number"),
    (["scale", "--depth", "0"], "depth multiplier must be > 0"),
    (["scale", "--resolution", "-1"], "resolution multiplier must be > 0"),
    (["scale", "--base", "resnet5000", "--phi", "1"], "no file or zoo entry"),
])
def test_cli_bad_input(argv, fragment, tmp_path, capsys):
    space = nas.load("search_spaces/darts.yaml")
    cells = tmp_path / "cells.yaml"
    nas.dump(space.resolve(space.sample(0)), cells)
    nostages = tmp_path / "nostages.yaml"
    nostages.write_text("name: flat\ninput: {channels: 3, size: 32}\nclasses: 10\n"
                        "stem: [{op: conv, k: 3, c: 16, s: 2}]\nhead: [{op: classifier}]\n")
    assert main([a.format(cells=cells, nostages=nostages, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and fragment in err, err
    assert not (tmp_path / "x.yaml").exists()


def test_scale_writes_a_standalone_module(tiny, tmp_path, capsys):
    out = tmp_path / "tiny_half.py"
    assert main(["scale", "--base", str(tiny), "--phi", "0.5", "--py", str(out)]) == 0
    source = out.read_text()
    assert "class Net(Network)" in source and "tiny_phi0p5" in source
    import torch

    namespace: dict = {}
    exec(compile(source, str(out), "exec"), namespace)
    arch = scaling.scale(nas.load(tiny), 0.5).arch  # what the module must be: the scaled tiny network
    reference = nas.build(arch, seed=0).eval()
    net = namespace["Net"]().eval()
    net.load_state_dict(reference.state_dict())  # strict: same keys and shapes
    x = torch.randn(2, *arch.plan().input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x))
