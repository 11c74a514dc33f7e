"""The shared-study budget without Ray or a server: two `Search` drivers on one Optuna study (SQLite here;
PostgreSQL in tests/test_postgres.py runs the same code) take turns, wait for each other, and a dead one's
running trial stops holding the budget once its heartbeat is stale."""
import time

import optuna
import pytest

from nas.recipe import loads_recipe
from nas.runs import RunDir
from nas.search.runner import WAIT, Search, prepare

RECIPE = """
space: {{source: fbnet, width: 0.25, depth: 0.25}}
strategy: {{name: tpe, startup: 2}}
train: {{epochs: 1}}
budget: {{trials: 5}}
storage: sqlite:///{db}
study_name: shared
"""


def driver(tmp_path, name, recipe, prepared) -> Search:
    return Search(recipe, RunDir.create(tmp_path / name, kind="search"), prepared, log=lambda line: None)


def finish(search: Search, proposal) -> None:
    number, assignment, costs = proposal
    search.complete(number, assignment, costs, {"val_acc": 0.5, "epoch": 1}, {"status": "done"}, False)


@pytest.mark.slow  # waits out a heartbeat's staleness (5 s)
def test_two_drivers_share_the_budget_and_a_dead_ones_trial_is_freed(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_STUDY_HEARTBEAT_S", "1")  # stale after 5 s without a beat
    recipe = loads_recipe(RECIPE.format(db=tmp_path / "study.db"), "r.yaml")
    prepared = prepare(recipe)
    a, b, dead = (driver(tmp_path, n, recipe, prepared) for n in ("a", "b", "dead"))
    held = [a.propose(), a.propose(), b.propose(), b.propose(), dead.propose()]
    assert all(isinstance(p, tuple) for p in held)
    assert sorted(p[0] for p in held) == [0, 1, 2, 3, 4]  # the study numbers them: no number twice
    assert a.propose() == WAIT and b.propose() == WAIT  # 5 running trials hold the budget of 5
    for search, proposal in zip((a, a, b, b), held[:4]):
        finish(search, proposal)
    dead.strategy.close()  # its process dies: no more heartbeats for trial 4
    a._next_count = 0.0
    assert a.propose() == WAIT and a.remaining == 1  # 4 trained, trial 4 still counts as running
    time.sleep(6.5)
    a._next_count = 0.0
    last = a.propose()  # trial 4 is failed as stale, its slot is free again
    assert isinstance(last, tuple) and last[0] == 5
    finish(a, last)
    b._next_count = 0.0
    assert b.propose() is None and a.remaining == 0 == b.remaining  # the study's budget is spent, for both
    trials = optuna.load_study(study_name="shared", storage=recipe.storage).trials
    assert trials[4].state.name == "FAIL" and not trials[4].user_attrs.get("nas_trained")
    assert sorted(t.number for t in trials if t.user_attrs.get("nas_trained")) == [0, 1, 2, 3, 5]
    assert sorted(a.records) == [0, 1, 5] and sorted(b.records) == [2, 3]  # each keeps its own trials
    for search in (a, b):
        search.strategy.close()
        search.run.close()
    dead.run.close()


def test_a_shared_study_with_other_objectives_is_a_located_error(tmp_path, capsys):
    """Optuna loads an existing study whatever its directions; mixing [accuracy] and [accuracy, flops] in one
    study would rank one search's trials by the other's objectives. Refused before the run folder (and Ray)."""
    from nas.cli import main

    db = tmp_path / "study.db"  # another search's study 'shared', maximizing accuracy only
    optuna.create_study(study_name="shared", storage=f"sqlite:///{db}", direction="maximize")
    path = tmp_path / "other.yaml"
    path.write_text(RECIPE.format(db=db).replace("{name: tpe, startup: 2}", "nsga2") + "objectives: [accuracy, flops]\n")
    assert main(["search", str(path), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}:") and "study 'shared'" in err and "[maximize]" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_study_made_with_other_objectives_after_the_check_is_still_refused(tmp_path):
    """Another process may create the study between `prepare`'s check and this driver's start: the strategy
    checks the directions it loaded again."""
    from nas.dsl.errors import SpecError

    recipe = loads_recipe(RECIPE.format(db=tmp_path / "study.db"), "r.yaml")
    prepared = prepare(recipe)  # no study named 'shared' yet: nothing to refuse
    optuna.create_study(study_name="shared", storage=recipe.storage, directions=["maximize", "minimize"])
    with pytest.raises(SpecError, match=r"optimizes \[maximize, minimize\], not this recipe's objectives \[accuracy\]"):
        driver(tmp_path, "late", recipe, prepared)
