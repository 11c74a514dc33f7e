"""The bi-level loop: loss formula, hardware awareness, resume after SIGKILL, derivation."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import nas.dsl as dsl
from nas.data import Dataset, Split, load_dataset
from nas.dsl.errors import SpecError
from nas.runs import RunDir
from nas.supernet import Supernet
from nas.supernet.derive import argmax_assignment, sample_assignments
from nas.supernet.dnas import DnasConfig, search, theta_loss
from test_supernet import TINY_DARTS, TINY_MNAS

ROOT = Path(__file__).resolve().parents[1]

TINY_FBNET = """
name: tiny_fbnet
input: {channels: 1, size: 16}
classes: 10
choices:
  tbs:
    k3_e1: {op: ir, k: 3, e: 1, expand: always}
    k3_e6: {op: ir, k: 3, e: 6}
    k5_e6: {op: ir, k: 5, e: 6}
    skip: {op: skip}
stem: [{op: conv, k: 3, c: 8, s: 2}]
stages:
  - {block: $tbs, c: 8, n: 2, s: 1}
  - {block: $tbs, c: 16, n: 2, s: 2}
head: [{op: conv, k: 1, c: 32}, {op: classifier}]
"""


def small_digits(n_train: int = 256, size: int = 16) -> Dataset:
    data = load_dataset("digits", size=size)
    return Dataset(data.name, Split(data.train.x[:n_train], data.train.y[:n_train]), Split(*data.val),
                   Split(*data.test), data.classes, data.channels, data.size)


def test_theta_loss_is_fbnet_formula_and_alpha_zero_is_plain_ce():
    ce, cost = torch.tensor(2.0), torch.tensor(1e6)
    got = theta_loss(ce, cost, DnasConfig(alpha=0.2, beta=0.6))
    assert float(got) == pytest.approx(2.0 * 0.2 * torch.log(torch.tensor(1e6)).item() ** 0.6, rel=1e-6)
    assert float(theta_loss(ce, cost, DnasConfig(alpha=0.0))) == 2.0
    assert float(theta_loss(ce, cost, DnasConfig(loss="darts"))) == 2.0


@pytest.mark.slow
def test_hardware_awareness_steers_to_fewer_flops():
    space = dsl.loads(TINY_FBNET)
    data = small_digits()
    runs = {alpha: search(space, data, DnasConfig(alpha=alpha, epochs=4, warmup=1, batch_size=32, seed=3,
                                                  theta_lr=0.05))
            for alpha in (0.0, 1.0)}
    flops = {alpha: r.history[-1]["derived_cost"] for alpha, r in runs.items()}
    assert flops[1.0] < flops[0.0]
    costs = [h["expected_cost"] for h in runs[1.0].history]
    assert costs[-1] < costs[0]
    assert all(b <= a for a, b in zip(costs[1:], costs[2:]))  # falls every epoch once θ is searched


SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
import nas.dsl as dsl
from nas.runs import RunDir
from nas.supernet.dnas import DnasConfig, search
from test_dnas import TINY_FBNET, small_digits
resume = sys.argv[2] == "resume"
with RunDir.create(sys.argv[1], kind="dnas", resume=resume) as run:
    search(dsl.loads(TINY_FBNET), small_digits(128), DnasConfig(epochs=4, warmup=1, batch_size=32, seed=5),
           run=run, resume=resume)
"""


def _run_search(folder: Path, mode: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = SCRIPT.format(tests=str(ROOT / "tests"))
    return subprocess.Popen([sys.executable, "-c", code, str(folder), mode], env=env, cwd=ROOT)


@pytest.mark.slow  # two searches
def test_a_seeded_search_does_not_depend_on_what_the_process_counted_before():
    """Counting an op builds it, which draws from torch's global generator, but only when the count is not cached
    yet: the second of two identical searches used to find the cache warm and train on another random stream."""
    from nas.cost.flops import _unit_cost_cached

    _unit_cost_cached.cache_clear()
    runs = [search(dsl.loads(TINY_FBNET), small_digits(64), DnasConfig(epochs=2, warmup=1, batch_size=32, seed=5))
            for _ in range(2)]
    untimed = [[{k: v for k, v in epoch.items() if k != "seconds"} for epoch in run.history] for run in runs]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2


@pytest.mark.slow
def test_sigkill_and_resume_give_the_theta_of_an_uninterrupted_run(tmp_path):
    whole = _run_search(tmp_path / "whole", "new")
    assert whole.wait(timeout=300) == 0
    killed = _run_search(tmp_path / "killed", "new")
    checkpoint = tmp_path / "killed" / "supernet.pt"
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    done = torch.load(checkpoint, weights_only=True)["epoch"]
    assert done < 4  # killed before the end
    resumed = _run_search(tmp_path / "killed", "resume")
    assert resumed.wait(timeout=300) == 0
    a = torch.load(tmp_path / "whole" / "supernet.pt", weights_only=True)
    b = torch.load(checkpoint, weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    for name in a["theta"]:
        assert torch.equal(a["theta"][name], b["theta"][name]), name
    for name in a["weights"]:
        assert torch.equal(a["weights"][name], b["weights"][name]), name


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path):
    with RunDir.create(tmp_path / "run", kind="dnas") as run:
        with pytest.raises(SpecError, match="no supernet checkpoint"):
            search(dsl.loads(TINY_MNAS), small_digits(64), DnasConfig(epochs=1), run=run, resume=True)


def test_darts_derivation_keeps_the_two_strongest_non_zero_edges():
    space = dsl.loads(TINY_DARTS)
    net = Supernet(space, mode="softmax", cells="edges")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name in net.arch.names():
            logits = net.arch[name]
            logits.copy_(torch.randn(logits.shape, generator=gen))
            logits[0] = 10.0  # `none` is the first option and dominates every edge
    assignment = argmax_assignment(net)
    ops = list(space.choices()["cells.normal.nodes.2.op0"].keys)
    for cname in ("normal", "reduction"):
        for j in range(3):
            sources = ["h0", "h1"] + [f"n{m}" for m in range(j)]
            strength = {s: torch.softmax(net.arch[f"cells.{cname}.nodes.{j}.edges.{s}"].detach(), -1)[1:]
                        for s in sources}
            order = sorted(sources, key=lambda s: -float(strength[s].max()))
            for t in (0, 1):
                assert assignment[f"cells.{cname}.nodes.{j}.in{t}"] == order[t]
                assert assignment[f"cells.{cname}.nodes.{j}.op{t}"] == ops[1 + int(strength[order[t]].argmax())]
    space.resolve(assignment)
    samples = sample_assignments(net, 4, torch.Generator().manual_seed(1))
    assert all(a[f"cells.normal.nodes.{j}.in0"] != a[f"cells.normal.nodes.{j}.in1"] for a in samples for j in range(3))
    assert all("none" not in a.values() for a in samples)


def _set_logits(net: Supernet, logits: dict[str, list[float]]) -> None:
    assert set(logits) == set(net.arch.names())
    with torch.no_grad():
        for name, values in logits.items():
            net.arch[name].copy_(torch.tensor(values))


# Cells whose types differ in node count (the reduction cell has one node fewer), ops with DARTS's `none`.
UNEVEN_DARTS = """
name: uneven_darts
input: {channels: 3, size: 8}
classes: 4
choices:
  ops: {none: {op: zero}, skip: {op: skip, reduce: factorized}, sep3: {op: sep, k: 3}}
stem: [{op: conv, k: 3, c: 8, s: 1, act: none}]
cells:
  normal: {nodes: 3, inputs: 2, ops: $ops, concat: nodes}
  reduction: {nodes: 2, inputs: 2, ops: $ops, concat: nodes, reduce: true}
body: {pattern: [normal, reduction, normal], F: 4}
head: [{op: classifier}]
"""


def test_darts_derivation_by_hand_from_set_logits():
    """An edge's strength is its strongest non-`none` op under the softmax over all its ops (`none` included);
    node j keeps its own two strongest incoming edges, each with that op. Worked out by hand below."""
    space = dsl.loads(UNEVEN_DARTS)
    net = Supernet(space, mode="softmax", cells="edges")
    edges = {  # logits over (none, skip, sep3) → strength, per edge
        "normal.0": {"h0": [0, 2, 0],      # .79 skip
                     "h1": [0, 0, 1]},     # .58 sep3
        "normal.1": {"h0": [0, 1, 0],      # .58 skip
                     "h1": [3, 2, 0],      # .26: the largest op logit, but `none` takes most of the softmax
                     "n0": [0, 0, 3]},     # .91 sep3
        "normal.2": {"h0": [0, 0.5, 0],    # .45
                     "h1": [0, 0, 2],      # .79 sep3
                     "n0": [0, 1, 0],      # .58
                     "n1": [0, 0, 1.5]},   # .69 sep3
        "reduction.0": {"h0": [0, 0, 2],   # .79 sep3
                        "h1": [0, 3, 0]},  # .91 skip
        "reduction.1": {"h0": [0, 1, 0],   # .58 skip
                        "h1": [0, 0, 0.5],  # .45 sep3
                        "n0": [5, 1, 0]}}  # .02
    _set_logits(net, {f"cells.{cell.split('.')[0]}.nodes.{cell.split('.')[1]}.edges.{s}": v
                      for cell, by_source in edges.items() for s, v in by_source.items()})
    derived = {  # node: (in0, op0, in1, op1), the stronger edge first
        "normal.0": ("h0", "skip", "h1", "sep3"), "normal.1": ("n0", "sep3", "h0", "skip"),
        "normal.2": ("h1", "sep3", "n1", "sep3"), "reduction.0": ("h1", "skip", "h0", "sep3"),
        "reduction.1": ("h0", "skip", "h1", "sep3")}
    expected = {}
    for node, (in0, op0, in1, op1) in derived.items():
        cell, j = node.split(".")
        expected.update({f"cells.{cell}.nodes.{j}.in0": in0, f"cells.{cell}.nodes.{j}.op0": op0,
                         f"cells.{cell}.nodes.{j}.in1": in1, f"cells.{cell}.nodes.{j}.op1": op1})
    assert argmax_assignment(net) == expected
    space.resolve(expected)


def test_argmax_of_slots_never_derives_none_and_keeps_value_choices():
    """The slots parametrization: every choice takes its largest logit, except that an op choice never takes
    `none` (a value choice, the stem's width here, and the inputs are plain argmaxes)."""
    space = dsl.loads(UNEVEN_DARTS.replace("c: 8, s: 1", "c: {choice: [8, 12]}, s: 1"))
    net = Supernet(space, mode="softmax", cells="slots")
    logits = {name: [0.0] * len(choice) for name, choice in space.choices().items()}
    logits["stem.0.c"] = [0.5, 1.0]  # → 12
    logits["cells.normal.nodes.0.op0"] = [4.0, 1.0, 2.0]  # none strongest → sep3
    logits["cells.normal.nodes.0.op1"] = [4.0, 2.0, 1.0]  # → skip
    logits["cells.normal.nodes.2.in1"] = [0.0, 0.0, 0.0, 1.0]  # → n1
    logits["cells.reduction.nodes.1.op0"] = [-1.0, 0.5, 3.0]  # none weakest → sep3
    _set_logits(net, logits)
    expected = {name: choice.keys[0] for name, choice in space.choices().items()}
    for name, choice in space.choices().items():
        if name.split(".")[-1].startswith("op"):
            expected[name] = "skip"  # all-equal logits: the first op that is not `none`
    expected.update({"stem.0.c": "12", "cells.normal.nodes.0.op0": "sep3", "cells.normal.nodes.0.op1": "skip",
                     "cells.normal.nodes.2.in1": "n1", "cells.reduction.nodes.1.op0": "sep3"})
    assert argmax_assignment(net) == expected
    assert space.resolve(expected).doc["stem"][0]["c"] == 12
