"""`nas show`, `nas count`, `nas --version`: what a user sees."""
import json
import os

import pytest

import nas
from nas.cli import main


def test_show_space_reports_choices_and_size(capsys):
    assert main(["show", "search_spaces/fbnet.yaml"]) == 0
    out = capsys.readouterr().out
    assert "22 choices" in out and "9.848e+20" in out and "$tbs (9) per layer" in out


def test_show_sample_prints_resolved_arch_and_layer_table(capsys):
    assert main(["show", "search_spaces/fbnet.yaml", "--sample", "4", "--input-size", "96"]) == 0
    out = capsys.readouterr().out
    assert "layers: [" in out and "stages.1.layers.3" in out and "total" in out


def test_show_cell_space(capsys):
    assert main(["show", "search_spaces/darts.yaml", "--sample", "0"]) == 0
    out = capsys.readouterr().out
    assert "body.0.nodes.0.op0" in out and "concat: nodes" in out


def test_count_json_prints_b0s_exact_counts(capsys):
    # pinned (run once and checked), not recomputed with the count_arch the CLI itself calls
    assert main(["count", "search_spaces/efficientnet_b0.yaml", "--json", "--input-size", "128"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["params"], data["flops"]) == (5_288_548, 127_264_768)
    assert data["input"] == [3, 128, 128]


def test_count_with_latency_prints_the_measured_figure(capsys, monkeypatch):
    import nas.cost.latency

    monkeypatch.setattr(nas.cost.latency, "measure_latency", lambda model, shape, device: 12.5)
    assert main(["count", "search_spaces/fbnet.yaml", "--sample", "0", "--input-size", "64", "--latency",
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "latency 12.50 ms (median, batch 1, cpu)" in out


def test_zoo_alias_and_version(capsys):
    # in-process (a `python -m nas` process imports torch: seconds); test_install and test_resume run `python -m nas`
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"nas {nas.__version__}"
    for alias, name in (("b0", "efficientnet_b0"), ("B0", "efficientnet_b0")):
        assert nas.zoo.resolve_source(alias) == nas.zoo.resolve_source(name)
        assert nas.zoo.load(alias).name == name


@pytest.mark.parametrize("name", ["b3", "efficientnet_b7"])
def test_efficientnet_b1_to_b7_point_at_compound_scaling(name, capsys):
    """B1…B7 are made from B0 by `nas scale`, not shipped as files: asking for one says how to make it."""
    phi = name[-1]
    assert main(["show", name]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {name}: no file or zoo entry named '{name}'") and len(err.splitlines()) == 1
    assert f"nas scale --base b0 --official --phi {phi} -o efficientnet_b{phi}.yaml" in err


def _subcommands() -> list[str]:
    import argparse

    from nas.cli import build_parser

    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_the_subcommand_list_is_the_real_one():
    # guards the parametrization below against finding fewer commands than there are
    assert {"show", "count", "train", "eval", "search", "scale", "export", "zoo", "lut", "report"} <= set(
        _subcommands())


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: nas {command}")


def test_the_params_nas_show_prints_are_op_params():
    """`nas show`'s per-layer settings come from the op schema: every name it lists is some op's parameter."""
    from nas.dsl.ops import OPS, SHOWN_PARAMS, shown_params

    assert all(any(name in op.params for op in OPS.values()) for name in SHOWN_PARAMS)
    assert shown_params({"op": "ir", "k": 3, "e": 1, "s": 1, "se": 0, "act": "relu6", "groups": 1}) == [
        ("k", 3), ("e", 1), ("s", 1), ("act", "relu6")]


def test_single_file_writers_never_replace_what_is_not_a_regular_file(tmp_path, capsys):
    """`nas scale --py` and `-o` write through a rename; run as root, a rename over /dev/zero replaced the
    device with a file (it happened). A named pipe stands for a device here: refused in one line, left as is."""
    target = tmp_path / "target"
    os.mkfifo(target)
    for args in (["scale", "--base", "b0", "--phi", "1", "--py", str(target)],
                 ["scale", "--base", "b0", "--phi", "1", "-o", str(target)]):
        assert main(args) == 2
        out, err = capsys.readouterr()
        assert err.startswith("error: ") and "not a regular file" in err and len(err.strip().splitlines()) == 1
        assert out == ""  # refused before the scaling ran (it prints its report before writing)
        assert target.is_fifo()
    assert not (tmp_path / "target.tmp").exists()
