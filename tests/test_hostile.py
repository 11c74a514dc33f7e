"""The hostile-input corpus (tests/hostile_corpus.py) under a memory cap and a time limit: every input ends in
the one-line error (exit 2) or succeeds where it should — no traceback, no hang, no blow-up, no silent wrong
result. The cases run in bench/hostile.py's forked children (a clean parent), one subprocess per group."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostile_corpus import CASES

ROOT = Path(__file__).resolve().parent.parent
MEM_MB = 768  # beyond the parent's own (torch imported); the cap is resource.setrlimit(RLIMIT_AS) in the child
TIMEOUT = 15.0  # seconds per case, generous for 2 busy cores; the slowest proper case takes about 3


def _trains(case) -> bool:
    """Cases that really train (a run made first, or a command that should succeed): seconds each."""
    return any(step[:1] == ["train"] for step in case.before) or (case.argv[:1] == ["train"] and case.expect != "error")


FAST = [c for c in CASES if not _trains(c)]
SLOW = [c for c in CASES if _trains(c)]


SHARDS = 2  # one bench/hostile.py process per core: each case runs alone in its forked child, so shards are independent


def _run(cases, tmp_path_factory) -> dict:
    """Every case's outcome, the corpus split round-robin over SHARDS processes started at once (a parent forks its
    cases one at a time, so a shard never forks beside a thread of its own)."""
    folder = tmp_path_factory.mktemp("hostile")
    procs = []
    for k in range(SHARDS):
        shard = cases[k::SHARDS]
        out = folder / f"outcomes{k}.json"
        procs.append((out, subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "hostile.py"), "--names", ",".join(c.name for c in shard), "--json",
             str(out), "--mem-mb", str(MEM_MB), "--timeout", str(TIMEOUT)], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})))
    outcomes = {}
    for out, proc in procs:
        _, stderr = proc.communicate(timeout=40 * len(cases) + 120)
        assert proc.returncode == 0, stderr[-3000:]
        outcomes.update({o["case"]: o for o in json.loads(out.read_text())})
    assert set(outcomes) == {c.name for c in cases}
    return outcomes


@pytest.fixture(scope="module")
def fast_outcomes(tmp_path_factory):
    return _run(FAST, tmp_path_factory)


@pytest.fixture(scope="module")
def slow_outcomes(tmp_path_factory):
    return _run(SLOW, tmp_path_factory)


def _check(case, outcome) -> None:
    assert outcome["verdict"] in ("error", "ok"), f"{case.name}: {outcome['verdict']}\n{outcome['stderr'][-2000:]}"
    assert outcome["seconds"] < TIMEOUT and outcome["extra_mb"] < MEM_MB
    if case.expect == "error":
        assert outcome["code"] == 2
        assert case.message in outcome["stderr"], f"{case.name}: {outcome['stderr'][-2000:]}"
    if case.expect == "ok":
        assert outcome["code"] == 0, outcome["stderr"]


def test_corpus_covers_every_class():
    kinds = {c.kind for c in CASES}
    assert kinds == {"resources", "runs", "data", "resume", "odd"}
    assert len(CASES) >= 100 and len({c.name for c in CASES}) == len(CASES)
    # an error case names the rule that refused it: any other one-line error would not do
    assert all(c.message for c in CASES if c.expect == "error")
    assert {c.expect for c in CASES} == {"error", "ok"}  # no case accepts either outcome


@pytest.mark.slow  # the corpus runs in subprocesses: about 20 s in all, too long for the edit-test loop
@pytest.mark.parametrize("case", FAST, ids=[c.name for c in FAST])
def test_hostile_input(case, fast_outcomes):
    _check(case, fast_outcomes[case.name])


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[c.name for c in SLOW])
def test_hostile_input_that_trains(case, slow_outcomes):
    _check(case, slow_outcomes[case.name])
