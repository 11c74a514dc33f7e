"""`sweep:` in a DNAS recipe: member recipes are the recipe with `--set` applied, bad sweeps are one-line errors,
and a tiny family runs end to end on Ray Tune (its table equals the members' own summaries) and resumes after
a SIGKILL (finished members kept, the unfinished one continued from its last epoch)."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.recipe import load_recipe, loads_recipe
from nas.recipe_sweep import sweep_members
from test_dnas import TINY_FBNET

ROOT = Path(__file__).resolve().parent.parent
BASE = """name: tiny
space: {source: fbnet_small.yaml, size: 16, classes: 10}
data: {name: digits, size: 16}
strategy: {name: dnas, epochs: 2, warmup: 1, samples: 1, theta_lr: 0.05}
seed: 0
"""


def _recipe(tmp_path: Path, sweep: str, base: str = BASE) -> Path:
    (tmp_path / "fbnet_small.yaml").write_text(TINY_FBNET)
    path = tmp_path / "r.yaml"
    path.write_text(base + sweep)
    return path


def test_a_member_is_the_recipe_with_its_values_set_as_set_does(tmp_path):
    path = _recipe(tmp_path, "sweep: {alpha: [0.0, 0.5], train.lr: [0.1, 0.01]}\n")
    recipe = loads_recipe(path.read_text(), str(path))
    members = sweep_members(recipe)
    assert [m.name for m in members] == ["alpha=0.0,train.lr=0.1", "alpha=0.0,train.lr=0.01",
                                         "alpha=0.5,train.lr=0.1", "alpha=0.5,train.lr=0.01"]
    plain = BASE  # the same recipe without the sweep, given the member's values through --set
    for member in members:
        sets = [f"strategy.alpha={member.values['alpha']}", f"train.lr={member.values['train.lr']}"]
        expected = loads_recipe(plain, str(path), sets)
        assert member.recipe.as_dict() == expected.as_dict() and member.recipe.sweep is None
    assert members[3].recipe.strategy.options["alpha"] == 0.5 and members[3].recipe.train["lr"] == 0.01


def test_a_sweep_set_on_the_command_line_is_the_nested_form_of_the_dotted_one(tmp_path):
    path = _recipe(tmp_path, "")
    nested = loads_recipe(path.read_text(), str(path), ["sweep.strategy.beta=[0.5, 1.0]"])
    dotted = loads_recipe(path.read_text() + "sweep: {strategy.beta: [0.5, 1.0]}\n", str(path))
    assert nested.sweep == dotted.sweep == {"strategy.beta": [0.5, 1.0]}
    assert [m.recipe.as_dict() for m in sweep_members(nested)] == [m.recipe.as_dict() for m in sweep_members(dotted)]


@pytest.mark.parametrize("sweep, message, line", [
    ("sweep: {alfa: [0.1]}", "unknown sweep key 'alfa' (did you mean 'alpha'?)", 6),
    ("sweep: {strategy.alfa: [0.1]}", "sweep member strategy.alfa=0.1: unknown option 'alfa'", 6),
    ("sweep: {alpha: []}", "sweep 'alpha' must be a non-empty list of values", 6),
    ("sweep: {alpha: 0.2}", "sweep 'alpha' must be a non-empty list of values", 6),
    ("sweep: {alpha: [0.2, 0.2]}", "sweep 'alpha' lists a value twice", 6),
    ("sweep: {alpha: [0.2, -1]}", "sweep member alpha=-1: bad value -1.0 for strategy.alpha", 6),
    ("sweep: {resources.cpus: [1, 2]}", "'resources' cannot be swept", 6),
    ("sweep: {strategy.name: [tpe]}", "strategy.name cannot be swept", 6),
    ("sweep: []", "sweep must be a mapping", 6),
])
def test_bad_sweeps_are_located_one_line_errors(tmp_path, capsys, sweep, message, line):
    path = _recipe(tmp_path, sweep + "\n")
    code = main(["search", str(path), "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert message in err and f"r.yaml:{line}:" in err
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_sweep_on_a_multi_trial_strategy_is_refused(tmp_path, capsys):
    path = _recipe(tmp_path, "sweep: {train.lr: [0.1, 0.2]}\n",
                   base="space: {source: fbnet_small.yaml}\nstrategy: tpe\n")
    code = main(["search", str(path), "-o", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "strategy 'tpe' is multi-trial" in err


def test_the_shipped_family_recipe_makes_three_dnas_members():
    recipe = load_recipe(ROOT / "recipes" / "fbnet_family.yaml")
    members = sweep_members(recipe)
    assert [m.name for m in members] == ["beta=0.6", "beta=2.0", "beta=6.0"]
    assert [m.recipe.strategy.options["beta"] for m in members] == [0.6, 2.0, 6.0]
    assert all(m.recipe.strategy.name == "dnas" and m.recipe.retrain for m in members)
    assert len(members[0].recipe.load_space().choices()) == 12  # depth ×0.5 of FBNet's 22 searched layers


def _rows(run: Path) -> list[dict]:
    with open(run / "family.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _check_family(run: Path, key: str, values: list[str]) -> dict:
    """family.csv and summary.json list each member with the numbers of its own summary.json."""
    summary = json.loads((run / "summary.json").read_text())
    rows = _rows(run)
    assert [r[key] for r in rows] == values and [r["status"] for r in rows] == ["done"] * len(values)
    for row, listed in zip(rows, summary["members"]):
        own = json.loads((run / "members" / row["member"] / "summary.json").read_text())
        assert listed["flops"] == own["best"]["flops"] and float(row["flops"]) == pytest.approx(own["best"]["flops"])
        assert listed["params"] == own["best"]["params"] == int(row["params"])
        assert listed["search_val_acc"] == own["final_epoch"]["val_acc"]
        assert float(row["search_val_acc"]) == pytest.approx(own["final_epoch"]["val_acc"], rel=1e-5)
        assert listed["test_acc"] == own["retrain"]["test_acc"]
        assert float(row["test_acc"]) == pytest.approx(own["retrain"]["test_acc"], rel=1e-5)
        assert row["picks"] == " ".join(own["best"]["assignment"].values())
    return summary


@pytest.mark.slow
def test_a_tiny_family_runs_as_ray_trials(tmp_path, capsys, ray_session):
    path = _recipe(tmp_path, "retrain: {epochs: 1}\ntrain: {epochs: 1}\nsweep: {alpha: [0.0, 1.0]}\n")
    run = tmp_path / "run"
    assert main(["search", str(path), "-o", str(run)]) == 0
    out = capsys.readouterr().out
    assert "a family of 2 DNAS searches" in out and "members/alpha=1.0/best.arch.yaml" in out
    summary = _check_family(run, "alpha", ["0.0", "1.0"])
    assert summary["sweep"] == {"alpha": [0.0, 1.0]}
    assert (run / "ray").is_dir()  # Ray Tune's experiment folder: the members were Tune trials
    member = run / "members" / "alpha=1.0"
    assert json.loads((member / "summary.json").read_text())["alpha"] == 1.0
    assert main(["export", str(member), "--format", "yaml", "-o", str(tmp_path / "export"), "--quiet"]) == 0
    body = lambda path: [line for line in path.read_text().splitlines() if not line.startswith("#")]  # noqa: E731
    assert body(tmp_path / "export" / "arch.yaml") == body(member / "best.arch.yaml")


KILL_RECIPE = """retrain: {epochs: 1}
train: {epochs: 1}
resources: {cpus: 1}
sweep: {strategy.epochs: [2, 6]}
"""


@pytest.mark.slow
def test_a_killed_family_resumes_keeping_finished_members(tmp_path):
    path = _recipe(tmp_path, KILL_RECIPE)
    run = tmp_path / "run"
    first, second = run / "members" / "strategy.epochs=2", run / "members" / "strategy.epochs=6"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", str(path), "-o", str(run), "--quiet"],
                            env=env, cwd=ROOT, start_new_session=True)  # its own local Ray, in its session
    deadline = time.time() + 600
    try:  # one member at a time (cpus: 1): kill once the first is done and the second has finished an epoch
        while time.time() < deadline and proc.poll() is None and not (second / "history.json").exists():
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its Ray and the trial's worker
        proc.wait()
    assert (first / "summary.json").is_file() and not (second / "summary.json").exists()
    done = torch.load(second / "supernet.pt", weights_only=True)["epoch"]
    assert 1 <= done < 6
    kept = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (first / "summary.json", first / "supernet.pt")}
    before = json.loads((second / "history.json").read_text())
    deadline = time.time() + 60  # the killed worker's lock goes with its process
    while time.time() < deadline and _locked(second):
        time.sleep(0.2)
    assert main(["search", "--resume", str(run), "--quiet"]) == 0
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == was for p, was in kept.items())
    after = json.loads((second / "history.json").read_text())
    assert [h["epoch"] for h in after] == [1, 2, 3, 4, 5, 6]
    assert after[:len(before)] == before  # the epochs before the kill were not run again (same timings too)
    _check_family(run, "strategy.epochs", ["2", "6"])


def _locked(folder: Path) -> bool:
    import fcntl

    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
