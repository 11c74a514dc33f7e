"""The DSL as pure data: parsing with positions, choices, sizes, resolve/dump/load, transforms."""
import math
import subprocess
import sys

import pytest

import nas
from nas.dsl import SpecError, dumps, loads
from nas.dsl.transform import round_channels, round_repeats
from nas.zoo import spaces_dir

SMALL = """
name: small
input: {channels: 1, size: 16}
classes: 10
choices:
  ops:
    a: {op: ir, k: 3, e: 2}
    b: {op: ir, k: 5, e: 4}
    s: {op: skip}
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {block: $ops, c: 8, n: 2, s: 1}
  - {op: ir, k: {choice: [3, 5]}, e: 3, c: 16, n: 2, s: 2}
  - {block: $ops, shared: true, c: {choice: [16, 24]}, n: {choice: [1, 2, 3]}, s: 2}
head: [{op: conv, k: 1, c: 32}, {op: classifier}]
"""


def test_fbnet_space_has_22_choices_and_size_9_pow_22(spaces):
    space = nas.load(spaces / "fbnet.yaml")
    assert len(space.choices()) == 22
    assert space.size() == 9 ** 22
    assert f"{space.size():.3g}" == "9.85e+20"
    assert list(space.choices())[:3] == ["stages.0.layers.0", "stages.1.layers.0", "stages.1.layers.1"]
    choice = space.choices()["stages.3.layers.2"]
    assert list(choice) == ["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip"]
    assert choice.set_name == "tbs"


def test_choice_names_are_semantic_and_stable():
    space = loads(SMALL)
    assert list(space.choices()) == [
        "stages.0.layers.0", "stages.0.layers.1",
        "stages.1.layers.0.k", "stages.1.layers.1.k",
        "stages.2.c", "stages.2.n", "stages.2.block",
    ]
    assert list(space.choices()["stages.1.layers.0.k"]) == ["3", "5"]


def test_size_counts_layers_beyond_a_depth_choice_only_when_used():
    space = loads(SMALL)
    # stage 0: 3*3, stage 1: 2*2, stage 2: shared block (3) * width (2) * depth (3 options)
    assert space.size() == 9 * 4 * 3 * 2 * 3
    per_layer = loads(SMALL.replace("{block: $ops, shared: true,", "{block: $ops,"))
    # per-layer picks in stage 2: depth 1 → 3, depth 2 → 9, depth 3 → 27
    assert per_layer.size() == 9 * 4 * 2 * (3 + 9 + 27)


def test_sample_is_seeded_and_resolve_applies_picks():
    space = loads(SMALL)
    assert space.sample(7) == space.sample(7)
    assert any(space.sample(i) != space.sample(7) for i in range(5))
    picks = dict(space.sample(0), **{"stages.2.n": "2", "stages.2.c": 24, "stages.1.layers.0.k": 5})
    arch = space.resolve(picks)
    plan = arch.plan()
    assert len(plan.stages[2]) == 2 and plan.stages[2][0].out_shape[0] == 24
    assert plan.stages[1][0].spec["k"] == 5


def test_resolve_rejects_unknown_names_options_and_gaps():
    space = loads(SMALL)
    with pytest.raises(SpecError, match="not a choice"):
        space.resolve(dict(space.sample(0), **{"stages.9.c": 3}))
    with pytest.raises(SpecError, match="not an option"):
        space.resolve(dict(space.sample(0), **{"stages.2.c": 17}))
    partial = space.sample(0)
    partial.pop("stages.2.n")
    with pytest.raises(SpecError, match="open"):
        space.resolve(partial)


def test_resolved_form_lists_the_picks_and_round_trips(spaces):
    space = nas.load(spaces / "fbnet.yaml")
    arch = space.resolve(space.sample(3))
    text = dumps(arch)
    assert "choices:" not in text and "$tbs" not in text
    assert "layers: [" in text
    again = loads(text)
    assert isinstance(again, nas.dsl.Arch)
    assert again.plan().units() == arch.plan().units()
    assert dumps(again) == text


@pytest.mark.parametrize("name", ["fbnet", "nasnet", "darts", "efficientnet_b0"])
def test_spaces_round_trip_through_dump(spaces, name):
    space = nas.load(spaces / f"{name}.yaml")
    again = loads(dumps(space))
    assert list(again.choices()) == list(space.choices())
    assert again.size() == space.size()
    seed_arch = space.resolve(space.sample(1))
    assert again.resolve(again.sample(1)).plan().units() == seed_arch.plan().units()


def test_cell_space_choices_and_inputs(spaces):
    space = nas.load(spaces / "nasnet.yaml")
    choices = space.choices()
    assert len(choices) == 2 * 5 * 4
    assert list(choices["cells.normal.nodes.0.in0"]) == ["h0", "h1"]
    assert list(choices["cells.reduction.nodes.4.in1"]) == ["h0", "h1", "n0", "n1", "n2", "n3"]
    assert len(choices["cells.normal.nodes.2.op1"]) == 13
    assert space.size() == (13 ** 10 * math.prod((2 + j) ** 2 for j in range(5))) ** 2
    darts = nas.load(spaces / "darts.yaml")
    assert len(darts.choices()) == 2 * 4 * 4 and len(darts.choices()["cells.normal.nodes.0.op0"]) == 8


def test_reduction_cells_stride_inputs_and_concat_unused(spaces):
    space = nas.load(spaces / "nasnet.yaml")
    arch = space.resolve(space.sample(5))
    plan = arch.plan()
    for cell in plan.cells:
        for node in cell.nodes:
            for source, unit in node.inputs:
                expected = 2 if cell.reduce and source in ("h0", "h1") else 1
                assert unit.spec.get("s", 1) == expected
        assert cell.out_shape[0] == len(cell.concat) * cell.channels
    # F doubles at each body reduction; the stem cells run at F/4 and F/2
    widths = [cell.channels for cell in plan.cells]
    assert widths[:3] == [11, 22, 44] and widths[-1] == 176


def test_transforms_are_pure_and_revalidate(spaces):
    b0 = nas.load(spaces / "efficientnet_b0.yaml")
    b2 = b0.with_width(1.1).with_depth(1.2)
    assert [row["c"] for row in b2.doc["stages"]] == [16, 24, 48, 88, 120, 208, 352]
    assert [row["n"] for row in b2.doc["stages"]] == [2, 3, 3, 4, 4, 5, 2]
    assert b0.doc["stages"][2]["c"] == 40  # the original is untouched
    small = b0.with_input(channels=1, size=32).with_classes(10)
    plan = small.plan()
    assert plan.input_shape == (1, 32, 32) and plan.head[-1].out_shape == (10, 1, 1)
    with pytest.raises(SpecError, match="1×1"):
        b0.with_input(size=8).plan()
    fb = nas.load(spaces / "fbnet.yaml").with_depth(1.5)
    assert len(fb.choices()) == 2 * 2 + 5 * 6  # stages of 1 layer → 2, stages of 4 → 6
    assert "stages.1.layers.5" in fb.choices()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "32"])
def test_with_input_takes_positive_integers_only(spaces, bad):
    b0 = nas.load(spaces / "efficientnet_b0.yaml")
    for key in ("size", "channels"):
        with pytest.raises(SpecError, match=f"input {key} must be a positive integer, got {bad!r}"):
            b0.with_input(**{key: bad})
    assert b0.with_input(channels=1).doc["input"]["channels"] == 1  # 1 is positive


def test_width_one_keeps_grow_and_fixed_layers_exactly():
    """`grow` layers only widen: at ×1 (and below) they keep their width even when it is not a multiple of 8."""
    for rule in ("grow", "fixed"):
        doc = nas.zoo.load("mobilenetv2").doc
        doc["head"][0].update(width=rule, c=1001)
        base = nas.zoo.load("mobilenetv2").copy_with(doc)
        assert [base.with_width(w).doc["head"][0]["c"] for w in (1.0, 0.5)] == [1001, 1001]
        assert base.with_width(2.0).doc["head"][0]["c"] == (2000 if rule == "grow" else 1001)


def test_with_preprocess_records_and_drops_the_record():
    from nas.dsl.transform import with_preprocess

    arch = nas.zoo.load("mobilenetv2").with_input(channels=1, size=32).with_classes(10)
    record = {"size": 32, "channels": 1, "mean": [0.5], "std": [0.25]}
    recorded = with_preprocess(arch, record)
    assert {k: recorded.doc["preprocess"][k] for k in record} == record and "preprocess" not in arch.doc
    assert "preprocess" not in with_preprocess(recorded, None).doc  # None drops it
    with pytest.raises(SpecError, match="'preprocess' must be a mapping"):
        with_preprocess(arch, [0.5])


def test_transforms_clear_stale_references():
    """A quarter-width MobileNetV2 must not claim the full network's 3,504,872 params: every transform that
    changes the network drops `reference`, rewrites `description` and says what it was derived from."""
    base = nas.zoo.load("mobilenetv2")
    assert base.doc["reference"]["params"] == 3504872
    small = base.with_width(0.25).with_input(channels=1, size=32).with_classes(10).with_depth(2)
    assert "reference" not in small.doc and "224" not in small.doc["description"]
    assert small.doc["derived_from"] == {"name": "mobilenetv2",
                                         "transforms": ["width x0.25", "input 1x32x32", "10 classes", "depth x2"]}
    again = loads(dumps(small))  # the record survives dump → load
    assert again.doc["derived_from"] == small.doc["derived_from"] and "reference" not in again.doc
    same = base.with_width(1).with_input(size=224).with_classes(1000).with_depth(1)
    assert same.doc["reference"] == base.doc["reference"] and "derived_from" not in same.doc  # nothing changed
    from nas import scaling

    quarter = scaling.scale_dimensions(base, width=0.25).arch
    assert "reference" not in quarter.doc and quarter.doc["derived_from"]["name"] == "mobilenetv2"
    b2 = scaling.official(nas.zoo.load("b0"), 2).arch  # the released B2 has published figures of its own
    assert b2.doc["reference"]["params"] == 9.2e6 and "B2" in b2.doc["description"]


def test_require_fixed_is_the_one_search_space_guard(spaces):
    space = nas.load(spaces / "fbnet.yaml")
    with pytest.raises(SpecError, match="'fbnet' is a search space with 22 choices") as err:
        space.require_fixed("pick one")
    assert err.value.hint == "pick one" and "fbnet.yaml" in str(err.value)
    arch = space.resolve(space.sample(0))
    assert arch.require_fixed() is arch
    with pytest.raises(SpecError, match="is a search space"):
        nas.build(space)


def test_choices_are_frozen_and_travel(spaces):
    import dataclasses
    import pickle

    space = nas.load(spaces / "fbnet.yaml")
    choice = space.choices()["stages.1.layers.0"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.name = "renamed"
    with pytest.raises(TypeError):
        choice.values["new"] = {"op": "skip"}  # a read-only view
    assert pickle.loads(pickle.dumps(choice)) == choice  # Ray ships spaces to its workers
    deeper = space.with_depth(1.5)  # renaming copies: the original keeps its names
    assert "stages.1.layers.5" in deeper.choices() and "stages.1.layers.5" not in space.choices()
    assert space.resolve(space.sample(3)).doc == nas.load(spaces / "fbnet.yaml").resolve(space.sample(3)).doc


def test_rounding_rules():
    assert round_channels(32 * 1.1) == 32 and round_channels(40 * 1.1) == 48 and round_channels(3) == 8
    assert round_channels(1280 * 1.1) == 1408 and round_channels(12) == 16
    assert round_channels(20 * 0.25, 8) == 8
    assert round_repeats(3, 1.2) == 4 and round_repeats(1, 1.0) == 1 and round_repeats(4, 3.1) == 13


def test_dsl_imports_no_torch():
    code = ("import sys, nas, nas.dsl; s = nas.load('search_spaces/fbnet.yaml'); s.resolve(s.sample(0)).plan();"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(spaces_dir().parent))
    assert out.stdout.strip() == "False"


def test_option_values_are_accepted_in_place_of_keys():
    space = loads(SMALL)
    a = dict(space.sample(0), **{"stages.2.c": 16})
    b = dict(space.sample(0), **{"stages.2.c": "16"})
    assert space.resolve(a).plan().units() == space.resolve(b).plan().units()


def test_merge_keys_and_named_blocks():
    text = """
name: anchors
input: {channels: 3, size: 32}
classes: 10
blocks:
  mb: &mb {op: ir, k: 3, e: 6, act: swish}
stem: [{op: conv, k: 3, c: 16}]
stages:
  - {c: 24, s: 2, layers: [mb, mb, {<<: *mb, k: 5}]}
head: [{op: classifier}]
"""
    plan = loads(text).plan()
    assert [u.spec["k"] for u in plan.stages[0]] == [3, 3, 5]
    assert all(u.spec["act"] == "swish" for u in plan.stages[0])


CELL_WITH_BLOCKS = """name: t
input: {channels: 3, size: 16}
classes: 4
blocks:
  sep3: {op: sep, k: 3}
  unused: {op: sep, k: 5}
stem: [{op: conv, k: 3, c: 8}]
cells:
  normal:
    nodes:
      - {op0: sep3, in0: h1, op1: {op: skip}, in1: h0}
      - {op0: {choice: {a: {op: sep, k: 3}, b: {op: maxpool, k: 3}}}, in0: n0, op1: sep3, in1: {choice: [h0, h1]}}
body: {pattern: [normal], F: 8}
head: [{op: classifier}]
"""


def test_resolve_keeps_exactly_the_blocks_a_cell_architecture_uses():
    """Explicit nodes mix named blocks, inline op mappings and choices: the resolved architecture keeps the
    named blocks its nodes read and the picked options, and drops the rest."""
    space = loads(CELL_WITH_BLOCKS)
    assert set(space.choices()) == {"cells.normal.nodes.1.op0", "cells.normal.nodes.1.in1"}
    for pick, kept in (("a", {"sep3", "a"}), ("b", {"sep3", "b"})):
        arch = space.resolve({"cells.normal.nodes.1.op0": pick, "cells.normal.nodes.1.in1": "h0"})
        assert set(arch.doc["blocks"]) == kept
        assert arch.doc["cells"]["normal"]["nodes"][0]["op1"] == {"op": "skip"}
        assert arch.plan().cells[0].channels == 8
    thinnest = loads(CELL_WITH_BLOCKS.replace("F: 8", "F: 1"))  # one channel per node is a valid network
    assert thinnest.resolve(thinnest.sample(0)).plan().cells[0].channels == 1


CLASHING_BLOCKS = """name: t
input: {channels: 3, size: 32}
classes: 4
blocks:
  k3: {op: ir, k: 5, e: 6}
choices:
  tbs:
    k3: {op: ir, k: 3, e: 1}
    k5: {op: ir, k: 5, e: 3}
stem: [{op: conv, k: 3, c: 8, s: 2}]
stages:
  - {block: k3, c: 8, n: 1, s: 1}
  - {block: $tbs, c: 16, n: 1, s: 2}
  - {block: {choice: {k3: {op: ir, k: 3, e: 4}, k7: {op: ir, k: 7, e: 1}}}, c: 16, n: 1, s: 1}
head: [{op: classifier}]
"""


def test_a_picked_option_named_like_another_block_gets_its_set_or_choice_name():
    """Picked options become named blocks; an option key already naming a different block is prefixed by its
    option set's name (tbs_k3) or, for an inline choice, by the choice's name — never silently merged."""
    space = loads(CLASHING_BLOCKS)
    arch = space.resolve({name: "k3" for name in space.choices()})
    assert arch.doc["blocks"] == {"k3": {"op": "ir", "k": 5, "e": 6}, "tbs_k3": {"op": "ir", "k": 3, "e": 1},
                                  "stages_2_layers_0_k3": {"op": "ir", "k": 3, "e": 4}}
    assert [u.spec["k"] for u in arch.plan().stages[1]] == [3] and [u.spec["e"] for u in arch.plan().stages[2]] == [4]
