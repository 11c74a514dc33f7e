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


def _run(cases, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("hostile") / "outcomes.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "hostile.py"), "--names",
                           ",".join(c.name for c in cases), "--json", str(out), "--mem-mb", str(MEM_MB),
                           "--timeout", str(TIMEOUT)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=40 * len(cases) + 120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {o["case"]: o for o in json.loads(out.read_text())}


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
    if case.expect == "ok":
        assert outcome["code"] == 0, outcome["stderr"]


def test_corpus_covers_every_class():
    kinds = {c.kind for c in CASES}
    assert kinds == {"resources", "runs", "data", "resume", "odd"}
    assert len(CASES) >= 100 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", FAST, ids=[c.name for c in FAST])
def test_hostile_input(case, fast_outcomes):
    _check(case, fast_outcomes[case.name])


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[c.name for c in SLOW])
def test_hostile_input_that_trains(case, slow_outcomes):
    _check(case, slow_outcomes[case.name])
