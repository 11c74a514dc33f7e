"""Run folders through the CLI, and the resume corpus: a damaged, hostile or foreign checkpoint or config is
refused in one line before anything is loaded, and the run's files stay as they were."""
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hostile_corpus import OTHER, TINY
from nas.cli import main
from nas.runs import read_json

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["train", "tiny.yaml", "--epochs", "1", "--size", "8", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished run of the tiny architecture (and one of another architecture), shared by the tests."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.yaml").write_text(TINY)
    (root / "other.yaml").write_text(OTHER)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(TRAIN + ["-o", "run"]) == 0
        assert main(["train", "other.yaml", "--epochs", "1", "--size", "8", "--quiet", "-o", "other"]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def run(trained, tmp_path, monkeypatch):
    """A private copy of the trained run (and the tiny architecture) in the test's own folder."""
    shutil.copytree(trained / "run", tmp_path / "run")
    shutil.copy(trained / "tiny.yaml", tmp_path / "tiny.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "run"


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


def _one_line_error(capsys, fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and fragment in err, err
    assert "Traceback" not in err
    return err


def _evil(path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))
    path.write_bytes(pickle.dumps({"model": Evil()}))


def _edit_checkpoint(change):
    def apply(run: Path, trained: Path) -> None:
        state = torch.load(run / "checkpoint.pt", weights_only=True)
        change(state)
        torch.save(state, run / "checkpoint.pt")
    return apply


DAMAGE = {
    "truncated checkpoint": (lambda run, _: (run / "checkpoint.pt").write_bytes(
        (run / "checkpoint.pt").read_bytes()[:1000]), "not a checkpoint file, or a damaged or unsafe one"),
    "empty checkpoint": (lambda run, _: (run / "checkpoint.pt").write_bytes(b""), "checkpoint file is empty"),
    "hostile checkpoint": (lambda run, _: _evil(run / "checkpoint.pt"), "damaged or unsafe"),
    "checkpoint of another arch": (lambda run, trained: shutil.copy(trained / "other" / "checkpoint.pt",
                                                                    run / "checkpoint.pt"), "do not fit"),
    "checkpoint is a folder": (lambda run, _: ((run / "checkpoint.pt").unlink(), (run / "checkpoint.pt").mkdir()),
                               "the checkpoint path is not a regular file"),
    "checkpoint not a dict": (lambda run, _: torch.save([1, 2], run / "checkpoint.pt"), "not a checkpoint"),
    "epoch and history disagree": (_edit_checkpoint(lambda s: s.update(epoch=7)), "epoch and history disagree"),
    "checkpoint key missing": (_edit_checkpoint(lambda s: s.pop("optimizer")), "'optimizer' is missing"),
    "checkpoint weights reshaped": (_edit_checkpoint(lambda s: s["model"].update(
        {next(iter(s["model"])): torch.zeros(1)})), "the architecture needs"),
    "optimizer state foreign": (_edit_checkpoint(lambda s: s["optimizer"].update(param_groups=[])),
                                "does not fit this run"),
    "truncated config": (lambda run, _: (run / "config.json").write_text('{"args": {"epochs"'), "bad JSON"),
    "config not an object": (lambda run, _: (run / "config.json").write_text("[1, 2]"), "must be an object"),
    "config wrong types": (lambda run, _: (run / "config.json").write_text('{"args": {"epochs": "many"}}'),
                           "'epochs' has the wrong type"),
    "config unknown key": (lambda run, _: (run / "config.json").write_text('{"args": {"func": 1}}'),
                           "unknown setting 'func'"),
    "config NaN": (lambda run, _: (run / "config.json").write_text('{"args": {"lr": NaN}}'), "not strict JSON"),
    "config out of range": (lambda run, _: (run / "config.json").write_text('{"args": {"seed": -1}}'), "--seed"),
    "arch missing": (lambda run, _: (run / "arch.yaml").unlink(), "no such file"),
    "marker damaged": (lambda run, _: (run / ".nas-run").write_text("{"), "bad JSON"),
    "marker of an export": (lambda run, _: (run / ".nas-run").write_text('{"kind": "export"}'),
                            "'export' run folder, not a 'train' one"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_resume_refuses_damage_in_one_line_and_keeps_the_files(name, run, trained, capsys):
    damage, fragment = DAMAGE[name]
    damage(run, trained)
    before = _files(run)
    assert main(["train", "--resume", str(run), "--quiet"]) == 2
    _one_line_error(capsys, fragment)
    assert _files(run) == before
    assert not Path("pwned").exists()


def test_resume_of_a_finished_run_changes_nothing_but_is_allowed(run, capsys):
    weights = torch.load(run / "weights.pt", weights_only=True)
    epoch = torch.load(run / "checkpoint.pt", weights_only=True)["epoch"]
    metrics = read_json(run / "metrics.json")
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    after = torch.load(run / "weights.pt", weights_only=True)
    assert after.keys() == weights.keys() and all(torch.equal(after[k], weights[k]) for k in weights)
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == epoch == 1
    resumed = read_json(run / "metrics.json")
    assert resumed["history"] == metrics["history"] and len(metrics["history"]) == 1
    assert resumed["test_acc"] == metrics["test_acc"] is not None


def test_an_existing_run_needs_overwrite(run, capsys):
    before = _files(run)
    assert main(TRAIN + ["-o", "run"]) == 2
    _one_line_error(capsys, "--resume to continue it, --overwrite to replace it")
    assert _files(run) == before
    assert main(TRAIN + ["-o", "run", "--overwrite", "--seed", "3"]) == 0
    assert read_json(run / "config.json")["args"]["seed"] == 3


def test_a_nan_never_replaces_the_last_good_weights(run, capsys):
    config = read_json(run / "config.json")
    config["args"].update(epochs=2)
    (run / "config.json").write_text(json.dumps(config))
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    for key, tensor in state["model"].items():  # finite but huge: epoch 2 overflows to a NaN loss
        if tensor.is_floating_point():
            tensor.mul_(1e30)
    torch.save(state, run / "checkpoint.pt")
    weights = (run / "weights.pt").read_bytes()
    assert main(["train", "--resume", str(run), "--quiet"]) == 1
    assert (run / "weights.pt").read_bytes() == weights
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    metrics = read_json(run / "metrics.json")  # strict: the NaN loss is written as null
    assert metrics["status"] == "nan" and metrics["history"][-1]["train_loss"] is None


def test_export_refuses_its_own_run_and_links(run, tmp_path, capsys):
    before = _files(run)
    for out in ("run", "run/export"):
        assert main(["export", "run", "-o", out]) == 2
        _one_line_error(capsys, "refusing to export into the run folder it reads")
    assert _files(run) == before
    (tmp_path / "victim.txt").write_text("keep")
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "victim.txt", tmp_path / "out" / "model.py")
    assert main(["export", "tiny.yaml", "-o", "out"]) == 2
    _one_line_error(capsys, "not a run folder")
    assert main(["export", "run", "-o", "exported"]) == 0
    (tmp_path / "exported" / "model.py").unlink()
    os.symlink(tmp_path / "victim.txt", tmp_path / "exported" / "model.py")
    assert main(["export", "run", "-o", "exported", "--overwrite"]) == 0  # the links are cleared, not followed
    assert (tmp_path / "victim.txt").read_text() == "keep"
    assert not (tmp_path / "exported" / "model.py").is_symlink()


@pytest.mark.slow  # a second `nas` process
def test_a_second_train_into_a_run_in_use_names_the_holder(run, tmp_path, capsys):
    proc = subprocess.Popen([sys.executable, "-m", "nas", "train", "--resume", str(run), "--quiet"],
                            env={**os.environ, "PYTHONPATH": str(ROOT), "NAS_RUNS_PAUSE_BEFORE_RENAME": "30"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        config = read_json(run / "config.json")
        deadline = time.monotonic() + 60
        while (run / ".lock").read_text().strip() != str(proc.pid):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        assert main(TRAIN + ["-o", str(run), "--overwrite"]) == 2
        _one_line_error(capsys, f"in use by pid {proc.pid}")
        assert main(["train", "--resume", str(run), "--quiet"]) == 2
        _one_line_error(capsys, f"in use by pid {proc.pid}")
        assert read_json(run / "config.json") == config
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
