"""Bounded resources: the reader's limits, the count ceilings and the memory budget refuse early, located."""
import os
import time

import pytest

import nas
from hostile_corpus import ALIAS_BOMB, DEEP, TINY
from nas.budget import ACTIVATION_ENV, PARAMS_ENV, activation_bytes, count_params, limits
from nas.dsl import SpecError, loads
from nas.dsl.parse import MAX_FILE_BYTES, MAX_VALUES, parse_yaml, read_yaml


def _refused(text: str, fragment: str, line: int | None = None) -> SpecError:
    started = time.monotonic()
    with pytest.raises(SpecError, match=fragment) as err:
        parse_yaml(text, "f.yaml")
    assert time.monotonic() - started < 5
    assert str(err.value).startswith("f.yaml:") and "\n" not in str(err.value)
    if line is not None:
        assert err.value.where.line == line, str(err.value)
    return err.value


def test_alias_bomb_is_refused_before_it_is_built():
    _refused(ALIAS_BOMB, f"more than {MAX_VALUES} values through aliases")


def test_deep_nesting_and_many_values_and_aliases():
    _refused(DEEP, "nested more than 64 levels", 2)
    _refused("x: " + "{a: " * 100 + "1" + "}" * 100, "nested more than")
    _refused("x: [" + "0, " * (MAX_VALUES + 10) + "0]", f"more than {MAX_VALUES} values")
    _refused("a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]", "more than 1000 aliases")


def test_recursive_alias_points_at_the_use():
    _refused("name: r\nx: &a [1, *a]\n", "recursive alias '\\*a'", 2)
    _refused("name: r\nx: &a {b: {c: *a}}\n", "recursive alias", 2)


def test_nul_and_control_bytes_are_located():
    err = _refused("name: t\nx: a\x00b\n", "U\\+0000 is not allowed", 2)
    assert err.where.col == 5
    _refused("name: t\x07\n", "U\\+0007", 1)


def test_numbers_as_users_write_them():
    assert parse_yaml("a: 1e9\nb: 1.0e9\nc: -2.5E-3\nd: 1.0e+9\ne: 'x1e9'") == {
        "a": 1e9, "b": 1e9, "c": -2.5e-3, "d": 1e9, "e": "x1e9"}
    _refused("a: " + "9" * 5000, "cannot read this value")
    _refused("a: " + str(2**64), "integer too large")


def test_alias_use_is_the_location_of_an_aliased_value():
    text = "name: t\ninput: &i {channels: 1, size: 8}\nx: 1\nother: *i\n"
    doc = parse_yaml(text, "f.yaml")
    assert doc.loc("other").line == 4 and doc.loc("input").line == 2


def test_reader_refuses_odd_files(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    for path, fragment in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                           (tmp_path, "is a directory"), (tmp_path / "missing.yaml", "no such file")):
        with pytest.raises(SpecError, match=fragment):
            read_yaml(str(path))
    big = tmp_path / "big.yaml"
    big.write_text("x: [" + "0," * MAX_FILE_BYTES + "0]")
    with pytest.raises(SpecError, match="file too large"):
        read_yaml(str(big))


@pytest.mark.parametrize("change, fragment", [
    (("n: 1", "n: 100000"), "'n' \\(layers in the row\\) is 100000, above the limit"),
    (("k: 3, c: 4", "k: 3.0, c: 4"), "'k' must be an integer, got 3.0 \\(write 3\\)"),
    (("c: 4, s: 1", "c: 1.0e+300, s: 1"), "above the limit"),
    (("op: conv", "op: [conv]"), "unknown op \\['conv'\\]"),
])
def test_count_ceilings_and_types(change, fragment):
    with pytest.raises(SpecError, match=fragment):
        loads(TINY.replace(*change), "t.yaml").plan()


def test_cell_ceilings():
    from hostile_corpus import CELL

    with pytest.raises(SpecError, match="'nodes' \\(nodes in the cell\\) is 1000"):
        loads(CELL.replace("NODES", "1000").replace("PATTERN", "normal"), "c.yaml")
    for pattern, n, fragment in (("normal@0.0.0", 1, "cannot read the width multiplier '@0.0.0'"),
                                 ("normal@0", 1, "must be in \\(0, 64\\]"),
                                 ("normal*N", 100000, "the number of cells is 100000")):
        with pytest.raises(SpecError, match=fragment):
            space = loads(CELL.replace("NODES", "2").replace("PATTERN", pattern).replace("N: 1", f"N: {n}"), "c.yaml")
            space.resolve(space.sample(0)).plan()


def test_budget_counts_exactly_and_refuses_with_the_figure(monkeypatch):
    arch = nas.zoo.load("resnet18")
    plan = arch.plan()
    assert count_params(plan) == sum(p.numel() for p in nas.build(arch).parameters()) == 11689512
    # float32 input, stem conv, max-pool, two blocks per stage at 56², 28², 14², 7², then the classifier's logits
    by_hand = 3 * 224**2 + 64 * 112**2 + 64 * 56**2 + 2 * (64 * 56**2 + 128 * 28**2 + 256 * 14**2 + 512 * 7**2) + 1000
    assert activation_bytes(plan) == 4 * by_hand == 7_630_752
    monkeypatch.setenv(PARAMS_ENV, "1e6")
    with pytest.raises(SpecError, match="has 11,689,512 parameters .* over the limit of 1,000,000") as err:
        nas.build(arch)
    assert PARAMS_ENV in str(err.value)
    monkeypatch.delenv(PARAMS_ENV)
    monkeypatch.setenv(ACTIVATION_ENV, "1")
    with pytest.raises(SpecError, match="of activations for one 3×224×224 image, over the limit of 1 MB"):
        nas.build(arch)
    monkeypatch.setenv(ACTIVATION_ENV, "lots")
    with pytest.raises(SpecError, match=ACTIVATION_ENV):
        limits()


def test_a_wide_layer_is_refused_without_allocating():
    import resource

    wide = loads(TINY.replace("c: 4, s: 1", "c: 1000000000, s: 1"), "w.yaml")  # activations first
    many = loads(TINY.replace("classes: 10", "classes: 1000000000"), "k.yaml")  # a 4×10^9 classifier
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SpecError, match="GB of activations for one 1×8×8 image"):
        nas.build(wide)
    with pytest.raises(SpecError, match="has 5,000,000,112 parameters"):
        nas.build(many)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KB: nothing was allocated


@pytest.mark.parametrize("argv, fragment", [
    (["scale", "--phi", "1e300"], "overflows"),
    (["scale", "--phi", "30"], "multiplier is .* above the limit of 100"),
    (["scale", "--base", "mobilenetv2", "--width", "1e300"], "width multiplier is 1e\\+300"),
    (["scale", "--base", "mobilenetv2", "--depth", "1e6"], "depth multiplier is 1e\\+06"),
])
def test_scaling_multipliers_are_bounded(argv, fragment, capsys):
    from nas.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pytest.importorskip("re").search(fragment, err), err
