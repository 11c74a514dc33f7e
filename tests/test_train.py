"""The training loop: accuracy on real data, reproducibility, resume after SIGKILL, NaN handling, CLI."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import nas
from nas.cli import main
from nas.data import Dataset, Split, load_dataset
from nas.dsl import SpecError
from nas.runs import RunDir
from nas.train import TrainConfig, evaluate, train

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
name: small_mbv2
input: {channels: 1, size: 16}
classes: 10
stem: [{op: conv, k: 3, c: 8, s: 1, act: relu6}]
stages:
  - {op: ir, k: 3, e: 1, c: 8, n: 1, s: 1, act: relu6}
  - {op: ir, k: 3, e: 4, c: 16, n: 2, s: 2, act: relu6}
  - {op: ir, k: 3, e: 4, c: 24, n: 1, s: 2, act: relu6}
head: [{op: conv, k: 1, c: 64, act: relu6}, {op: classifier}]
"""
# MobileNetV2-like: inverted residuals (expand 6) with linear bottlenecks, 1×1 head conv, classifier.
TINY_MBV2 = """
name: tiny_mbv2
input: {channels: 1, size: 16}
classes: 10
stem: [{op: conv, k: 3, c: 16, s: 1, act: relu6}]
stages:
  - {op: ir, k: 3, e: 6, c: 24, n: 2, s: 2, act: relu6}
  - {op: ir, k: 3, e: 6, c: 32, n: 1, s: 2, act: relu6}
head: [{op: conv, k: 1, c: 128, act: relu6}, {op: classifier}]
"""
TIMING = ("seconds", "images_per_s")


def _stable(history):
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def _subset(data: Dataset, n: int) -> Dataset:
    """The first n training images (the split is already shuffled and stratified): fast loop tests."""
    return Dataset(data.name, Split(data.train.x[:n], data.train.y[:n]), data.val, data.test, data.classes,
                   data.channels, data.size)


@pytest.mark.slow
def test_small_mobilenetv2_reaches_95_percent_on_digits():
    data = load_dataset("digits", size=16)
    model = nas.build(nas.loads(TINY_MBV2), seed=0)
    result = train(model, data, TrainConfig(epochs=8, batch_size=64, lr=0.1, seed=0))
    assert result.status == "ok"
    assert result.test_acc >= 0.95, result.history
    assert evaluate(model, *data.test) == (result.test_loss, result.test_acc)


@pytest.mark.slow  # trains
def test_same_seed_same_result_and_callback_sees_each_epoch():
    data = _subset(load_dataset("digits", size=16), 384)
    arch = nas.loads(SMALL)
    seen = []
    runs = [train(nas.build(arch, seed=3), data, TrainConfig(epochs=2, seed=3, augment=True), callback=seen.append)
            for _ in range(2)]
    assert _stable(runs[0].history) == _stable(runs[1].history) and runs[0].test_acc == runs[1].test_acc
    assert [m["epoch"] for m in seen] == [1, 2, 1, 2]
    assert set(seen[0]) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds",
                            "images_per_s"}
    other = train(nas.build(arch, seed=4), data, TrainConfig(epochs=2, seed=4, augment=True))
    assert _stable(other.history) != _stable(runs[0].history)
    stopped = train(nas.build(arch, seed=3), data, TrainConfig(epochs=3, seed=3), callback=lambda m: False)
    assert stopped.status == "stopped" and len(stopped.history) == 1


@pytest.mark.slow  # trains
def test_resume_in_the_library_continues_without_repeating_epochs(tmp_path):
    data = _subset(load_dataset("digits", size=16), 256)
    arch = nas.loads(SMALL)
    config = TrainConfig(epochs=3, seed=5, augment=True, drop_path=0.1)
    whole = train(nas.build(arch, seed=5), data, config)
    first = train(nas.build(arch, seed=5), data, config, run_dir=tmp_path,
                  callback=lambda m: m["epoch"] < 2)  # stops after epoch 2's checkpoint, as a kill would
    assert first.status == "stopped" and len(first.history) == 2
    seen = []
    rest = train(nas.build(arch, seed=99), data, config, run_dir=tmp_path, resume=True, callback=seen.append)
    assert [m["epoch"] for m in seen] == [3]
    assert _stable(rest.history) == _stable(whole.history) and rest.test_acc == whole.test_acc
    with pytest.raises(SpecError, match="no checkpoint to resume from"):
        train(nas.build(arch), data, config, run_dir=tmp_path / "empty", resume=True)


class _Interrupted(Exception):
    pass


def _raise_after(epoch: int):
    def callback(metrics):
        if metrics["epoch"] == epoch:
            raise _Interrupted  # as a crash right after the epoch's checkpoint
    return callback


@pytest.mark.slow  # trains
def test_interrupted_run_resumes_to_bit_identical_weights(tmp_path, monkeypatch):
    """Drop-path and dropout draw from torch's global RNG, shuffling and augmentation from the loop's generator:
    a resume must restore both, so the final weights equal an uninterrupted run's bit for bit."""
    import nas.train as loop

    data = _subset(load_dataset("digits", size=16), 192)
    arch = nas.loads(SMALL.replace("{op: classifier}", "{op: classifier, dropout: 0.3}"))
    config = TrainConfig(epochs=3, batch_size=32, seed=7, augment=True, drop_path=0.3)
    whole = nas.build(arch, seed=7)
    train(whole, data, config)

    def resumed(folder, restore=None):
        with pytest.raises(_Interrupted):
            train(nas.build(arch, seed=7), data, config, run_dir=folder, callback=_raise_after(1))
        if restore is not None:
            monkeypatch.setattr(loop, "_restore_rng", restore)
        model = nas.build(arch, seed=99)  # the checkpoint, not the seed, must decide the weights
        result = train(model, data, config, run_dir=folder, resume=True)
        monkeypatch.undo()
        assert result.status == "ok" and [h["epoch"] for h in result.history] == [1, 2, 3]
        return model.state_dict()

    def same(a, b):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    assert same(resumed(tmp_path / "a"), whole.state_dict())
    # each RNG stream matters: restoring all but one of them gives other weights
    original = loop._restore_rng

    def without_global(state, generator):
        kept = torch.get_rng_state()
        original(state, generator)
        torch.set_rng_state(kept)

    def without_generator(state, generator):
        kept = generator.get_state()
        original(state, generator)
        generator.set_state(kept)

    assert not same(resumed(tmp_path / "b", without_global), whole.state_dict())
    assert not same(resumed(tmp_path / "c", without_generator), whole.state_dict())


def test_nan_loss_is_reported_not_raised():
    data = _subset(load_dataset("digits", size=16), 128)
    model = nas.build(nas.loads(SMALL), seed=0)
    with torch.no_grad():
        model.head[-1].fc.weight.fill_(float("nan"))
    result = train(model, data, TrainConfig(epochs=3, seed=0, grad_clip=None))
    assert result.status == "nan" and len(result.history) == 1 and result.test_acc is None


def test_drop_path_rates_rise_linearly_to_the_configured_rate(tmp_path):
    data = _subset(load_dataset("digits", size=16), 128)
    model = nas.build(nas.loads(SMALL), seed=0)
    result = train(model, data, TrainConfig(epochs=1, seed=0, drop_path=0.2, augment=True, flip=False,
                                            optimizer="adamw", lr=0.003, label_smoothing=0.1))
    rates = [m.drop_path_rate for m in model.modules() if hasattr(m, "drop_path_rate")]
    assert result.status == "ok" and len(rates) > 1
    # block i of n drops with 0.2·(i+1)/n (set during the run, with augmentation, smoothing and adamw on)
    assert rates == pytest.approx([0.2 * (i + 1) / len(rates) for i in range(len(rates))], rel=0, abs=1e-15)


def test_an_input_the_network_cannot_take_is_a_spec_error():
    data = _subset(load_dataset("digits", size=16), 64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8, 10))  # made for 8×8 images
    with pytest.raises(SpecError, match="cannot take 1×16×16 inputs") as err:
        train(model, data, TrainConfig(epochs=1))
    assert err.value.hint and "--size" in str(err.value)
    with pytest.raises(SpecError, match="outputs 5 classes"):
        train(nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, 5)), data, TrainConfig(epochs=1))


def _nas(*args, **kwargs):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_result(tmp_path):
    arch = tmp_path / "small.yaml"
    arch.write_text(SMALL)
    common = [str(arch), "--data", "digits", "--size", "16", "--epochs", "4", "--seed", "7", "--augment",
              "--quiet"]
    # only the killed run needs a process of its own; the reference run and the resume run in this one
    assert main(["train", *common, "-o", str(tmp_path / "full")]) == 0

    killed_dir = tmp_path / "killed"
    victim = _nas("train", *common, "-o", str(killed_dir))
    checkpoint = killed_dir / "checkpoint.pt"
    deadline = time.time() + 240
    while time.time() < deadline and victim.poll() is None:
        if checkpoint.is_file():
            state = torch.load(checkpoint, weights_only=True)
            if 1 <= state["epoch"] < 4:
                break
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    done_before = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= done_before < 4 and not (killed_dir / "metrics.json").exists()

    arch.unlink()  # resuming uses the run folder's own arch.yaml and settings
    assert main(["train", "--resume", str(killed_dir), "--quiet"]) == 0
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((killed_dir / "metrics.json").read_text())
    assert len(b["history"]) == 4 and _stable(a["history"]) == _stable(b["history"])
    assert a["test_acc"] == b["test_acc"] and a["test_loss"] == b["test_loss"]
    full_weights = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    resumed_weights = torch.load(killed_dir / "weights.pt", weights_only=True)
    assert all(torch.equal(full_weights[k], resumed_weights[k]) for k in full_weights)


@pytest.mark.slow  # trains
def test_cli_train_writes_the_run_folder_and_eval_reads_it(tmp_path, capsys):
    arch = tmp_path / "small.yaml"
    arch.write_text(SMALL)
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(arch), "--size", "16", "--epochs", "1", "-o", str(run)]) == 0
    assert {p.name for p in run.iterdir()} >= {"weights.pt", "metrics.json", "arch.yaml", "checkpoint.pt",
                                              "config.json"}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "ok" and 0 <= metrics["test_acc"] <= 1
    capsys.readouterr()
    assert main(["eval", str(run / "arch.yaml"), "--weights", str(run / "weights.pt"), "--size", "16"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["accuracy"] == pytest.approx(metrics["test_acc"])


def test_train_loss_and_accuracy_are_the_epochs_per_sample_means():
    """A pooled linear classifier (no norm, no dropout) at a learning rate too small to move a float32 weight: the
    epoch's reported training loss and accuracy are `evaluate`'s mean cross-entropy and accuracy on the training
    images, worked out in one pass outside the training loop."""
    arch = nas.loads("name: lin\ninput: {channels: 1, size: 16}\nclasses: 10\nstem: []\n"
                     "stages: [{op: act, act: none, c: 1, n: 1, s: 1}]\nhead: [{op: classifier}]\n")
    model = nas.build(arch, seed=0)
    data = _subset(load_dataset("digits", size=16), 500)
    loss, acc = evaluate(model, data.train.x, data.train.y)
    result = train(model, data, TrainConfig(epochs=1, lr=1e-12, weight_decay=0.0, batch_size=64, seed=0))
    assert result.history[0]["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert result.history[0]["train_acc"] == pytest.approx(acc, abs=1e-12)


def test_available_cpus_falls_back_to_the_core_count_without_affinity_masks(monkeypatch):
    """macOS and Windows have no sched_getaffinity: the default thread count is then every core."""
    from nas.train import available_cpus

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert available_cpus() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # "undetermined"
    assert available_cpus() == 1


def test_threads_default_to_the_cpus_given_and_follow_the_flag(tmp_path, capsys, monkeypatch):
    import argparse

    from nas.cli import train as cli_train

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr("nas.train.available_cpus", lambda: 3)  # as if the affinity mask held 3 CPUs
        assert cli_train._set_threads(argparse.Namespace(threads=None)) == 3 and torch.get_num_threads() == 3
        monkeypatch.chdir(tmp_path)  # short paths: the console shortens a status line wider than itself
        Path("small.yaml").write_text(SMALL)
        assert main(["train", "small.yaml", "--size", "16", "--epochs", "1", "--threads", "1", "-o", "run"]) == 0
        assert torch.get_num_threads() == 1 and "(1 CPU thread)" in capsys.readouterr().out
        assert main(["train", "small.yaml", "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)
    monkeypatch.undo()
    from nas.train import available_cpus

    assert 1 <= available_cpus() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("argv,fragment", [
    (["train", "{arch}", "--data", "mnist"], "unknown dataset 'mnist'"),
    (["train", "{arch}", "--data", "imagefolder", "--data-root", "{tmp}/nope"], "no such folder"),
    (["train", "{arch}", "--data", "npz"], "npz needs a file"),
    (["train", "{arch}", "--size", "1"], "1×1"),
    (["train", "search_spaces/fbnet.yaml"], "is a search space"),
    (["train", "{arch}", "--epochs", "0"], "positive integer"),
    (["train", "{arch}", "--device", "gpu0"], "unknown device"),
    (["train", "{arch}", "--resume", "{tmp}"], "not a run folder"),
    (["train", "--resume", "{tmp}/half"], "no checkpoint to resume from"),
    (["train"], "no architecture given"),
    (["train", "{arch}", "--data", "cifar10", "--data-root", "{tmp}/junk.tar.gz"], "checksum mismatch"),
    (["eval", "{arch}", "--weights", "{tmp}/missing.pt"], "no such weights file"),
    (["eval", "{arch}", "--weights", "{arch}"], "not a weights file"),
])
def test_cli_bad_input(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    arch = tmp_path / "small.yaml"
    arch.write_text(SMALL)
    half = tmp_path / "half"  # a run killed before its first checkpoint
    RunDir.create(half).close()
    (half / "config.json").write_text(json.dumps({"args": {"arch": str(arch), "epochs": 1, "size": 16}}))
    (half / "arch.yaml").write_text(SMALL)
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive")
    argv = [a.format(arch=arch, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and fragment in err, err
