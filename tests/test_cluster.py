"""Trials on a real 2-node Ray cluster (two `ray start` processes on this machine), a node killed mid-search,
and cluster addresses that are wrong (a one-line error, exit 2, no run folder)."""
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.cli import main
from services import RAY, RayCluster

ROOT = Path(__file__).resolve().parent.parent
RECIPE = """
space: {{source: fbnet, width: 0.25, depth: 0.25}}
strategy: random
train: {{epochs: {epochs}, batch_size: 64, warmup_epochs: 0}}
budget: {{trials: {trials}}}
resources: {{cpus: 2, cpus_per_trial: 1, concurrency: 2}}
seed: 0
{extra}"""


def recipe(tmp_path: Path, trials: int = 4, epochs: int = 1, extra: str = "") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(trials=trials, epochs=epochs, extra=extra))
    return path


def rows(run: Path) -> list[dict]:
    with open(run / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cluster():
    if not RAY.is_file():
        pytest.skip(f"the ray command is not installed next to {sys.executable}")
    nodes = RayCluster(cpus_per_node=1)
    try:
        yield nodes.start(nodes=2)
    finally:
        nodes.stop()


def search(cluster, recipe_path: Path, run: Path) -> subprocess.Popen:
    env = {**cluster.env, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "nas", "search", str(recipe_path), "--address", cluster.address,
                             "-o", str(run), "--quiet"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_trials_run_on_both_nodes_and_ray_writes_to_the_shared_path(cluster, tmp_path):
    shared = tmp_path / "shared"
    run = tmp_path / "run"
    proc = search(cluster, recipe(tmp_path, extra=f"ray: {{storage_path: {shared}}}\n"), run)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    table = rows(run)
    assert len(table) == 4 and all(r["status"] == "ok" for r in table)
    assert len({r["node_id"] for r in table}) == 2  # the head and the second node both trained trials
    assert all(r["node_ip"] for r in table)
    assert (shared / "run").is_dir() and not (run / "ray").exists()  # Tune's experiment went to storage_path


@pytest.mark.slow
def test_a_node_killed_mid_search_loses_no_trial(cluster, tmp_path):
    run = tmp_path / "run"
    proc = search(cluster, recipe(tmp_path, trials=4, epochs=4, extra="ray: {max_failures: 1}\n"), run)
    events = run / "events.jsonl"
    deadline = time.monotonic() + 240
    while not (events.is_file() and events.read_text().count('"ask"') >= 2):  # both nodes have a trial
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.2)
    time.sleep(2)  # mid-training
    lines = [json.loads(x) for x in events.read_text().splitlines() if x.strip()]
    cluster.kill("node1")
    told = {e["number"] for e in lines if e["event"] == "tell"}
    in_flight = {e["number"] for e in lines if e["event"] == "ask"} - told
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    # two trials in flight on two 1-CPU nodes: one of them was on the node that died
    assert len(in_flight) == 2, f"the kill did not hit two running trials: {lines}"
    table = rows(run)
    assert sorted(int(r["trial"]) for r in table) == [0, 1, 2, 3]
    assert all(r["status"] in ("ok", "failed") for r in table)
    assert json.loads((run / "summary.json").read_text())["trained"] == 4


@pytest.mark.parametrize("address, message", [
    ("head:port:6379", "malformed Ray address"),
    ("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"),
])
def test_a_bad_address_is_one_line_and_writes_nothing(address, message, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", str(recipe(tmp_path)), "--address", address, "-o", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --address") and message in err, err
    assert not run.exists()


def test_a_bad_address_in_the_recipe_is_located(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", str(recipe(tmp_path, extra="ray: {address: 'nohost:99999'}\n")), "-o", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "recipe.yaml:" in err and "malformed Ray address" in err, err
    assert not run.exists()
