"""Exact resume without Ray: replaying events.jsonl into a fresh strategy continues the same search."""
import pytest

from nas.recipe import loads_recipe
from nas.runs import RunDir
from nas.search.results import load_records, read_events
from nas.search.runner import Search, prepare

RECIPE = """
space: {source: fbnet, width: 0.25, depth: 0.25}
strategy: STRATEGY
constraints: {flops: "<= 450K"}
train: {epochs: 2}
budget: {trials: 9}
"""


def fake_accuracy(assignment: dict) -> float:
    return sum(len(v) for v in assignment.values()) / 100.0


def finish_one(search: Search, pending: list) -> None:
    number, assignment, costs = pending.pop(0)
    search.complete(number, assignment, costs, {"val_acc": fake_accuracy(assignment), "epoch": 2},
                    {"status": "done"}, False)


def run(path, recipe, prepared, stop_after=None, resume=False):
    """Two trials in flight at a time, like a concurrency-2 search; returns when the budget is spent or
    after `stop_after` completions (a kill: in-flight trials are lost)."""
    run_dir = RunDir.create(path, kind="search", resume=resume)
    search = Search(recipe, run_dir, prepared, resume=resume, log=lambda line: None)
    pending, done = [], 0
    while True:
        while len(pending) < 2 and (proposal := search.propose()) is not None:
            pending.append(proposal)
        if not pending or (stop_after is not None and done == stop_after):
            break
        finish_one(search, pending)
        done += 1
    search.strategy.close()
    run_dir.close()


@pytest.mark.parametrize("strategy", [pytest.param("{name: tpe, startup: 3}", marks=pytest.mark.slow),  # seconds
                                      "{name: evolution, population: 3, sample: 2}", "reinforce"])
def test_resume_continues_the_same_search(strategy, tmp_path):
    recipe = loads_recipe(RECIPE.replace("STRATEGY", strategy), "r.yaml")
    prepared = prepare(recipe)
    run(tmp_path / "whole", recipe, prepared)
    run(tmp_path / "killed", recipe, prepared, stop_after=4)
    before = {r.number: r for r in load_records(tmp_path / "killed")}
    run(tmp_path / "killed", recipe, prepared, resume=True)
    whole = {r.number: r for r in load_records(tmp_path / "whole")}
    resumed = {r.number: r for r in load_records(tmp_path / "killed")}
    assert sum(r.status not in ("rejected", "duplicate") for r in resumed.values()) == 9
    for number, record in before.items():
        assert resumed[number] == record
    # the same proposals, in the same order, as the search that was never killed
    assert {n: r.assignment for n, r in resumed.items()} == {n: r.assignment for n, r in whole.items()}
    asks = [e["number"] for e in read_events(tmp_path / "killed" / "events.jsonl") if e["event"] == "ask"]
    assert asks == sorted(set(asks))  # nothing was asked twice


def test_a_repeated_proposal_is_not_trained_again(tmp_path):
    space = tmp_path / "two.yaml"
    space.write_text("""
name: two
input: {channels: 1, size: 32}
classes: 10
stem: [{op: conv, k: 3, c: 8, s: 2}]
stages:
  - {op: ir, k: {choice: [3, 5]}, e: 1, c: 8, n: 1, s: 1}
head: [{op: classifier}]
""")
    recipe = loads_recipe(f"space: {{source: {space}}}\nstrategy: {{name: random, dedupe: false}}\n"
                          "budget: {trials: 2}\n", "r.yaml")
    run_dir = RunDir.create(tmp_path / "run", kind="search")
    search = Search(recipe, run_dir, prepare(recipe), log=lambda line: None)
    trained = []
    while (proposal := search.propose()) is not None:
        trained.append(proposal[1])
        finish_one(search, [proposal])
    run_dir.close()
    records = load_records(tmp_path / "run")
    duplicates = [r for r in records if r.status == "duplicate"]
    assert sorted(a["stages.0.layers.0.k"] for a in trained) == ["3", "5"]  # each architecture trained once
    assert duplicates and all(r.error.startswith("same architecture as trial") for r in duplicates)
    for r in duplicates:
        first = next(x for x in records if x.number == r.duplicate_of)
        assert r.assignment == first.assignment and r.val_acc == first.val_acc and r.epochs == 0
