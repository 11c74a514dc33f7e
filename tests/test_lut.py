"""`nas lut` latency tables: the file round-trips, its sum for an arch is its entries' sum, and a table from
another machine or space is refused with one line (exit 2). Tiny space, tiny input, few runs: seconds."""
import json

import pytest

import nas
from nas.cli import main
from nas.cost.lut_file import LatencyTable, space_identity

TINY = """\
name: tiny_blocks
input: {channels: 3, size: 16}
classes: 4
choices:
  blocks:
    k3_e1: {op: ir, k: 3, e: 1}
    k5_e3: {op: ir, k: 5, e: 3}
    skip: {op: skip}
stem:
  - {op: conv, k: 3, c: 8, s: 2}
stages:
  - {block: $blocks, c: 8, n: 2, s: 1}
  - {block: $blocks, c: 16, n: 2, s: 2}
head:
  - {op: conv, k: 1, c: 32}
  - {op: classifier}
"""
FAST = ["--repeats", "3", "--warmup", "1", "--copies", "2"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny space file and its table, measured once for the module."""
    folder = tmp_path_factory.mktemp("lut")
    space_file = folder / "tiny.yaml"
    space_file.write_text(TINY)
    lut = folder / "lut.json"
    assert main(["lut", str(space_file), "-o", str(lut), *FAST]) == 0
    return space_file, lut


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, argv, *words):
    code, out, err = _run(capsys, *argv)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line, no traceback
    for word in words:
        assert word in err, err
    return err


def _independent_sum(data: dict, picks: dict) -> float:
    """fixed + for each term the entry whose picks agree with the arch's — read from the JSON by hand."""
    total = data["fixed"]["ms"]
    for term in data["terms"]:
        matches = [e["ms"] for e in term["entries"]
                   if all(e["picks"][name] == picks[name] for name in term["choices"])]
        assert len(matches) == 1
        total += matches[0]
    return total


def test_file_round_trips_with_fingerprint_and_space_identity(tiny):
    space_file, lut = tiny
    data = json.loads(lut.read_text())
    table = LatencyTable.load(lut)
    assert table.data == data
    space = nas.load(space_file)
    assert data["space"]["name"] == "tiny_blocks"
    assert data["space"]["sha256"] == space_identity(space)["sha256"]
    assert data["space"]["input"] == [3, 16, 16]
    fp = data["fingerprint"]
    assert fp["device"] == "cpu" and fp["threads"] == 1 and fp["batch"] == 1 and fp["gpu"] is None
    assert fp["cpu"] and fp["torch"]
    assert table.timing.repeats == 3 and table.timing.copies == 2
    # one entry per (choice, option): 4 searched layers × 3 candidate blocks, every one timed
    choices = space.choices()
    assert sorted(t["name"] for t in data["terms"]) == sorted(choices)
    assert sum(len(t["entries"]) for t in data["terms"]) == 4 * 3
    assert all(e["ms"] > 0 for t in data["terms"] for e in t["entries"]) and data["fixed"]["ms"] > 0
    # the recipe path reads the same numbers back into a CostTable for the DNAS expected cost
    cost_table = table.cost_table(space)
    for seed in range(5):
        picks = space.sample(seed)
        assert cost_table.estimate(picks).latency_ms == pytest.approx(_independent_sum(data, picks), rel=1e-12)


def test_a_skip_costs_less_than_a_k5_e3_block(tiny):
    """Sanity of the timings: the stride-1 skip (identity) is cheaper than the k5 e3 block at that layer."""
    data = json.loads(tiny[1].read_text())
    term = next(t for t in data["terms"] if t["name"] == "stages.0.layers.1")
    ms = {e["picks"]["stages.0.layers.1"]: e["ms"] for e in term["entries"]}
    assert ms["skip"] < ms["k5_e3"]


def test_count_prints_the_table_sum_and_the_measured_latency(tiny, capsys):
    space_file, lut = tiny
    data = json.loads(lut.read_text())
    space = nas.load(space_file)
    for seed in (0, 1, 2):
        code, out, err = _run(capsys, "count", str(space_file), "--sample", str(seed), "--lut", str(lut), "--json")
        assert code == 0, err
        row = json.loads(out)
        assert row["lut_ms"] == pytest.approx(_independent_sum(data, space.sample(seed)), rel=1e-12)
        assert row["measured_ms"] > 0
    code, out, err = _run(capsys, "count", str(space_file), "--sample", "0", "--lut", str(lut))
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("latency: "))
    table_ms = float(line.split("table ")[1].split(" ms")[0])
    measured_ms = float(line.split("measured ")[1].split(" ms")[0])
    assert table_ms == pytest.approx(_independent_sum(data, space.sample(0)), abs=1e-3) and measured_ms > 0


def test_count_matches_a_fixed_architecture_file_by_its_ops(tiny, tmp_path, capsys):
    space_file, lut = tiny
    data = json.loads(lut.read_text())
    space = nas.load(space_file)
    picks = space.sample(4)
    arch_file = tmp_path / "picked.arch.yaml"
    nas.dump(space.resolve(picks), arch_file)
    code, out, err = _run(capsys, "count", str(arch_file), "--lut", str(lut), "--json")
    assert code == 0, err
    assert json.loads(out)["lut_ms"] == pytest.approx(_independent_sum(data, picks), rel=1e-12)


def _edited(lut, tmp_path, edit) -> str:
    data = json.loads(lut.read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("key, value", [("cpu", "Some Other CPU 9000"), ("torch", "1.0.0"), ("device", "cuda")])
def test_a_table_from_another_machine_is_refused(tiny, tmp_path, capsys, key, value):
    space_file, lut = tiny
    other = _edited(lut, tmp_path, lambda d: d["fingerprint"].__setitem__(key, value))
    _refused(capsys, ["count", str(space_file), "--sample", "0", "--lut", other], key,
             "re-run nas lut on this machine")


def test_other_threads_or_batch_are_refused(tiny, capsys):
    space_file, lut = tiny
    _refused(capsys, ["count", str(space_file), "--sample", "0", "--lut", str(lut), "--threads", "2"], "threads")
    _refused(capsys, ["count", str(space_file), "--sample", "0", "--lut", str(lut), "--batch", "4"], "batch")


def test_a_table_for_another_space_is_refused(tiny, tmp_path, capsys):
    space_file, lut = tiny
    _refused(capsys, ["count", str(space_file), "--sample", "0", "--input-size", "24", "--lut", str(lut)],
             "another space", "nas lut")
    other = tmp_path / "other.yaml"
    other.write_text(TINY.replace("c: 16, n: 2", "c: 24, n: 2"))
    _refused(capsys, ["count", str(other), "--sample", "0", "--lut", str(lut)], "another space")
    fixed = tmp_path / "other.arch.yaml"
    other_space = nas.load(other)
    nas.dump(other_space.resolve(other_space.sample(0)), fixed)
    _refused(capsys, ["count", str(fixed), "--lut", str(lut)], "not in the latency table")


def test_not_a_table_is_refused(tmp_path, capsys, tiny):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _refused(capsys, ["count", str(tiny[0]), "--sample", "0", "--lut", str(bad)], "invalid JSON")
    bad.write_text('{"format": "something else"}')
    _refused(capsys, ["count", str(tiny[0]), "--sample", "0", "--lut", str(bad)], "not a latency table")
    _refused(capsys, ["count", str(tiny[0]), "--sample", "0", "--lut", str(tmp_path / "missing.json")], "not found")


def test_bad_lut_arguments_are_one_line_errors(tiny, tmp_path, capsys):
    space_file, _ = tiny
    out = str(tmp_path / "x.json")
    _refused(capsys, ["lut", str(space_file), "-o", out, "--clock", "cpu", "--threads", "2"], "one thread")
    _refused(capsys, ["lut", str(space_file), "-o", out, "--statistic", "mean"], "statistic")
    _refused(capsys, ["lut", "-o", out], "SPACE or --recipe")
    _refused(capsys, ["lut", "darts", "--input-size", "8", "-o", out], "choose their inputs")
    assert not (tmp_path / "x.json").exists()
    import os
    import stat

    os.mkfifo(tmp_path / "pipe")  # stands for /dev/null: an output that is no regular file is never replaced
    _refused(capsys, ["lut", str(space_file), "-o", str(tmp_path / "pipe"), *FAST], "not a regular file")
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def _recipe(space_file, lut, cost="latency") -> str:
    return (f"name: lat\nspace: {{source: {space_file}}}\ndata: {{name: digits, size: 16}}\n"
            f"strategy: {{name: dnas, cost: {cost}, lut: {lut}, epochs: 2, warmup: 1}}\nseed: 0\n")


def test_dnas_recipe_takes_the_table_and_refuses_one_that_does_not_fit(tiny, tmp_path):
    from nas.dsl.errors import SpecError
    from nas.recipe import loads_recipe
    from nas.supernet.dnas import make_supernet
    from nas.supernet.strategy import config_from_recipe

    space_file, lut = tiny
    data = json.loads(lut.read_text())
    config = config_from_recipe(loads_recipe(_recipe(space_file, lut), "r.yaml"))
    space = nas.load(space_file)
    _, expected = make_supernet(space, config)
    picks = space.sample(7)
    assert expected.exact(picks) == pytest.approx(_independent_sum(data, picks), rel=1e-12)
    with pytest.raises(SpecError, match="only prices cost: latency"):
        config_from_recipe(loads_recipe(_recipe(space_file, lut, cost="flops"), "r.yaml"))
    other_machine = _edited(lut, tmp_path, lambda d: d["fingerprint"].__setitem__("cpu", "Other"))
    with pytest.raises(SpecError, match="re-run nas lut on this machine"):
        config_from_recipe(loads_recipe(_recipe(space_file, other_machine), "r.yaml"))
    with pytest.raises(SpecError, match="another space"):
        make_supernet(space.with_input(size=24), config)


def test_cost_latency_without_a_table_times_the_ops_here(tiny, monkeypatch):
    """Without lut:, cost: latency measures the space's ops on the search device (it used to stop with an
    internal error: the cost table had no latency). With a stand-in clock (an op's 'latency' is its parameter
    count / 1000), the expected cost of an architecture is its built network's parameter count / 1000."""
    import nas.cost.latency as latency
    import nas.cost.lut as lut
    from nas.cost.flops import param_count
    from nas.supernet.dnas import DnasConfig, make_supernet

    monkeypatch.setattr(lut, "_LATENCY", {})
    monkeypatch.setattr(latency, "time_forward", lambda modules, shape, timing: param_count(modules[0]) / 1000)
    space = nas.load(tiny[0])
    _, expected = make_supernet(space, DnasConfig(cost="latency", device="cpu"))
    fulls = set()
    for seed in range(3):
        picks = space.sample(seed)
        fulls.add(full := param_count(nas.build(space.resolve(picks))))
        assert expected.exact(picks) == pytest.approx(full / 1000, rel=1e-12), picks
    assert len(fulls) > 1  # the samples differ, so a table that ignored the picks would fail
