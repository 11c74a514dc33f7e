"""A shared Optuna study on a real PostgreSQL server (started by the fixture in a temp folder): two `nas search`
processes on one study share the budget, never number two trials alike, and a SIGKILL of one costs the other
nothing; an unreachable database is a one-line error that writes nothing."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from services import Postgres, postgres_bin

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 6
RECIPE = """
space: {{source: fbnet, width: 0.25, depth: 0.25}}
strategy: {{name: tpe, startup: 2}}
train: {{epochs: {epochs}, batch_size: 64, warmup_epochs: 0}}
budget: {{trials: {trials}}}
resources: {{cpus: 1, concurrency: 1}}
storage: {storage}
study_name: {study}
seed: 0
"""


@pytest.fixture(scope="module")
def postgres():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin: "
                    "apt-get install postgresql (.ci/run does)")
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        pytest.skip("running as root and there is no 'postgres' user to run the server as")
    server = Postgres()
    try:
        yield server.start()
    finally:
        server.stop()


def recipe(tmp_path: Path, storage: str, study: str, trials: int = BUDGET, epochs: int = 1) -> Path:
    path = tmp_path / f"{study}.yaml"
    path.write_text(RECIPE.format(storage=storage, study=study, trials=trials, epochs=epochs))
    return path


def start(recipe_path: Path, run: Path, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nas", "search", str(recipe_path), "-o", str(run), "--quiet"],
                            env={**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", **env},
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own group: a SIGKILL takes its local Ray along


def trained_rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["status"] in ("ok", "stopped", "failed")]


def study_trials(url: str, name: str):
    import optuna

    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


@pytest.mark.slow
def test_two_searches_share_the_budget_of_one_study(postgres, tmp_path):
    path = recipe(tmp_path, postgres.url, "shared")
    procs = [start(path, tmp_path / f"run{i}") for i in range(2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    numbers = [int(r["trial"]) for i in range(2) for r in trained_rows(tmp_path / f"run{i}")]
    assert len(numbers) == BUDGET and len(set(numbers)) == BUDGET  # together exactly the budget, no number twice
    assert all(trained_rows(tmp_path / f"run{i}") for i in range(2))  # both processes trained
    trials = study_trials(postgres.url, "shared")
    assert sorted(t.number for t in trials if t.user_attrs.get("nas_trained")) == sorted(numbers)
    for i in range(2):
        assert json.loads((tmp_path / f"run{i}" / "summary.json").read_text())["study"]["trained"] == BUDGET


@pytest.mark.slow
def test_sigkill_of_one_search_the_other_finishes_the_budget(postgres, tmp_path):
    path = recipe(tmp_path, postgres.url, "killed", epochs=3)
    beat = {"NAS_STUDY_HEARTBEAT_S": "1"}  # a dead process's running trial fails after 5 s
    victim, survivor = start(path, tmp_path / "victim", **beat), start(path, tmp_path / "survivor", **beat)
    events = tmp_path / "victim" / "events.jsonl"
    deadline = time.monotonic() + 300
    while not (events.is_file() and '"ask"' in events.read_text()):
        assert victim.poll() is None and time.monotonic() < deadline, victim.communicate()[0]
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    out, _ = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, out
    lines = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
    running = {e["number"] for e in lines if e["event"] == "ask"} - {e["number"] for e in lines if e["event"] != "ask"}
    assert running  # the kill hit the victim mid-trial
    trials = {t.number: t for t in study_trials(postgres.url, "killed")}
    assert all(trials[n].state.name == "FAIL" and not trials[n].user_attrs.get("nas_trained") for n in running)
    assert sum(bool(t.user_attrs.get("nas_trained")) for t in trials.values()) == BUDGET
    survivor_numbers = {int(r["trial"]) for r in trained_rows(tmp_path / "survivor")}
    assert survivor_numbers and not survivor_numbers & running
    assert all(trials[n].user_attrs.get("nas_trained") for n in survivor_numbers)  # nothing of its work lost


@pytest.mark.slow  # imports Ray Tune and psycopg
def test_an_unreachable_database_is_one_line_and_writes_nothing(tmp_path, capsys):
    from services import free_port

    url = f"postgresql://nas:secret@127.0.0.1:{free_port()}/nas"
    run = tmp_path / "run"
    assert main(["search", str(recipe(tmp_path, url, "nowhere")), "-o", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere.yaml:" in err and "storage" in err, err
    assert "secret" not in err  # the password is not printed
    assert not run.exists()
