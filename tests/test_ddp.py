"""`resources: {workers: N}`: the DNAS supernet data-parallel on Ray Train (gloo on CPU).

Equivalence: 2 workers on their shards of one batch end one step with the weights and θ that 1 worker gets
on the whole batch. Batch norm is the one thing that legitimately differs (each worker normalizes over its
own shard, as in any DDP without SyncBN), so the checks keep it out: the gloo test runs FBNet blocks with
their norms in eval mode (fixed statistics: still a differentiable affine map whose parameters train), the
Ray Train test a space without norms. Everything else — the weight step (SGD, momentum, clipping), the θ
step (Adam, FBNet's cost-aware loss), Gumbel noise, unused candidates in single_path — is the real code.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import nas.dsl as dsl
from nas.cli import main
from nas.supernet.dnas import DnasConfig, make_loop, train_step
from test_dnas import TINY_FBNET, small_digits

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

STEP_SCRIPT = """
import sys, torch
import torch.distributed as dist
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from test_ddp import one_step
from nas.supernet.allreduce import WorkerSync
rank, world, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method="file://" + folder + "/rendezvous", rank=rank, world_size=world)
torch.save({{mode: one_step(mode, WorkerSync()) for mode in ("mixture", "single_path")}}, f"{{folder}}/rank{{rank}}.pt")
dist.destroy_process_group()
"""


def one_step(mode: str, sync=None) -> dict:
    """One weight step and one θ step on a batch of 31 (split 16 + 15 over 2 workers), norms in eval mode."""
    data = small_digits(62)
    config = DnasConfig(mode=mode, epochs=1, warmup=0, batch_size=31, split=0.5, seed=7, temperature=1.0)
    loop = make_loop(dsl.loads(TINY_FBNET), data, config, torch.device("cpu"), torch.Generator().manual_seed(11))
    loop.net.train()
    for m in loop.net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    batch = (loop.w_part.x[:31], loop.w_part.y[:31])
    theta_batch = (loop.a_part.x[:31], loop.a_part.y[:31])
    sums = {"train_loss": 0.0, "train_correct": 0, "theta_loss": 0.0, "theta_correct": 0, "seen": 0, "a_seen": 0}
    train_step(loop, batch, theta_batch, sums, sync)
    return {"state": {k: v.clone() for k, v in loop.net.state_dict().items()},
            "theta_grad": {n: p.grad.clone() for n, p in loop.net.arch.named_parameters()},
            "seen": (sums["seen"], sums["a_seen"])}


def test_two_gloo_workers_take_the_step_of_one_worker_on_the_whole_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = STEP_SCRIPT.format(tests=str(ROOT / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(rank), "2", str(tmp_path)], env=env, cwd=ROOT)
             for rank in range(2)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    workers = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    for mode in ("mixture", "single_path"):
        whole = one_step(mode)
        assert workers[0][mode]["seen"] == (16, 16) and workers[1][mode]["seen"] == (15, 15)  # disjoint shards
        for worker in workers:
            got = worker[mode]
            changed = 0
            for key, value in whole["state"].items():
                torch.testing.assert_close(got["state"][key], value, rtol=1e-5, atol=1e-6, msg=f"{mode} {key}")
            for name, grad in whole["theta_grad"].items():
                torch.testing.assert_close(got["theta_grad"][name], grad, rtol=1e-4, atol=1e-7, msg=f"{mode} {name}")
                changed += bool(grad.abs().sum() > 0)
            assert changed  # θ did get a gradient: the check is not of zeros


PLAIN = """
name: plain
input: {channels: 1, size: 16}
classes: 10
choices:
  ops:
    k3: {op: conv, k: 3, bn: false}
    k5: {op: conv, k: 5, bn: false}
    skip: {op: skip}
stem: [{op: conv, k: 3, c: 8, s: 2, bn: false}]
stages:
  - {block: $ops, c: 8, n: 2, s: 1}
head: [{op: conv, k: 1, c: 16, bn: false}, {op: classifier}]
"""

RECIPE = """
name: tiny
space: {{source: {space}}}
data: {{name: digits, size: 16}}
strategy: {{name: dnas, mode: softmax, epochs: 1, warmup: 0, batch_size: 32, split: 0.5}}
resources: {{workers: {workers}, cpus: {cpus}}}
seed: 3
"""


def test_ray_train_two_workers_match_one_worker(tmp_path, ray_session):
    from nas.recipe import load_recipe
    from nas.runs import RunDir
    from nas.supernet.ddp import search_on_workers
    from nas.supernet.dnas import search
    from nas.supernet.strategy import config_from_recipe

    (tmp_path / "plain.yaml").write_text(PLAIN)
    (tmp_path / "r.yaml").write_text(RECIPE.format(space="plain.yaml", workers=2, cpus=2))
    recipe = load_recipe(tmp_path / "r.yaml")
    config = config_from_recipe(recipe)
    digits = small_digits(64)  # split 0.5: one weight batch of 32 and one θ batch of 32
    space = recipe.load_space(digits)
    whole = search(space, digits, config)
    with RunDir.create(tmp_path / "run", kind="search") as run:
        parallel = search_on_workers(recipe, space, digits, config, run, quiet=True)
    expected, got = whole.supernet.state_dict(), parallel.supernet.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(got["arch.logits.stages%2E0%2Elayers%2E0"],
                           torch.zeros_like(got["arch.logits.stages%2E0%2Elayers%2E0"]))  # θ took its step
    assert parallel.history[0]["train_loss"] == pytest.approx(whole.history[0]["train_loss"], rel=1e-5)
    assert (tmp_path / "run" / "ddp" / "epoch_0001" / "supernet.pt").is_file()  # Ray Train's checkpoint
    assert torch.load(tmp_path / "run" / "supernet.pt", weights_only=True)["epoch"] == 1


# The demo's recipe on two workers, at a quarter of FBNet's depth (one searched layer per stage): what is
# checked — the derived architecture, Ray Train's checkpoints, an exact resume — does not need 22 layers.
DEMO = ["--set", "resources.workers=2", "--set", "resources.cpus=2", "--set", "strategy.mode=single_path",
        "--set", "data.val_fraction=0.6", "--set", "retrain=", "--set", "strategy.samples=1",
        "--set", "space.depth=0.25"]


def test_two_worker_demo_recipe_search_derives_an_architecture_and_resumes_from_ray_checkpoints(tmp_path,
                                                                                             ray_session, capsys):
    run = tmp_path / "run"
    code = main(["search", str(ROOT / "recipes" / "fbnet.yaml"), "-o", str(run), "--quiet", *DEMO,
                 "--set", "strategy.epochs=2", "--set", "strategy.warmup=1"])
    assert code == 0, capsys.readouterr().err
    for name in ("recipe.yaml", "history.json", "supernet.pt", "best.arch.yaml", "best/arch.yaml", "summary.json",
                 "samples/sample_0.arch.yaml"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and [h["phase"] for h in history] == ["warmup", "search"]
    assert history[1]["theta"] and history[1]["theta_loss"] is not None
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best"]["assignment"] == history[-1]["derived"]
    assert dsl.load(run / "best.arch.yaml").name  # a resolved architecture file
    finished = torch.load(run / "supernet.pt", weights_only=True)

    # a search killed during epoch 2: its run folder has Ray Train's epoch-1 checkpoint and nothing later
    (run / "supernet.pt").unlink()
    for later in (run / "ddp").glob("epoch_0002"):
        for f in later.iterdir():
            f.unlink()
        later.rmdir()
    (run / "summary.json").unlink()
    assert main(["search", "--resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    resumed = torch.load(run / "supernet.pt", weights_only=True)
    assert resumed["epoch"] == 2
    for part in ("theta", "weights"):
        for name, value in finished[part].items():
            torch.testing.assert_close(resumed[part][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert (run / "summary.json").is_file()


@pytest.mark.parametrize("sets, message", [
    (["resources.workers=0"], "'workers' must be an integer ≥ 1, got 0"),
    (["resources.workers=5", "resources.cpus=2"], "5 workers need 5 CPUs but the local Ray has 2"),
])
def test_bad_worker_counts_are_one_line_errors_before_anything_is_written(tmp_path, capsys, sets, message):
    extra = [a for s in sets for a in ("--set", s)]
    code = main(["search", str(ROOT / "recipes" / "fbnet.yaml"), "-o", str(tmp_path / "run"), "--quiet", *extra])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()


def test_workers_with_a_multi_trial_strategy_are_refused(tmp_path, capsys):
    code = main(["search", str(ROOT / "recipes" / "fbnet_tpe.yaml"), "-o", str(tmp_path / "run"), "--quiet",
                 "--set", "resources.workers=2"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "resources.workers is for strategy dnas, not tpe" in err
    assert not (tmp_path / "run").exists()


def test_more_workers_than_the_running_clusters_cpus_fail_fast(tmp_path, ray_session, capsys):
    # resources.cpus allows 3 workers, but the Ray it joins (the test session's) has 2 CPUs: refused at once
    code = main(["search", str(ROOT / "recipes" / "fbnet.yaml"), "-o", str(tmp_path / "run"), "--quiet",
                 "--set", "resources.workers=3", "--set", "resources.cpus=4"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "3 workers need 3 CPUs but the Ray cluster has 2" in err
    assert not (tmp_path / "run").exists()
    assert ray_session.is_initialized()  # the session's Ray is left running


def test_a_workers_spec_error_reaches_the_user_as_itself():
    from ray.train import WorkerGroupError
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback

    from nas.dsl.errors import SpecError
    from nas.supernet.ddp import _user_error

    diverged = SpecError("the search diverged at epoch 2 (loss nan)", hint="lower strategy.lr")
    failure = WorkerGroupError("rank 0 failed", {0: UserExceptionWithTraceback(diverged, "Traceback ...")})
    assert _user_error(failure) is diverged
    assert _user_error(WorkerGroupError("rank 1 failed", {1: RuntimeError("gloo: connection reset")})) is None
