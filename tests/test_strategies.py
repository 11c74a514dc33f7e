"""Strategy logic without Ray: determinism, evolution's aging, REINFORCE's update direction, grid coverage,
conditional choices through walk, Optuna's constraints."""
import random

import pytest

import nas.dsl as dsl
from nas.dsl.errors import SpecError
from nas.recipe import Constraint, Objective
from nas.search.strategies import Exhausted, Outcome, make_strategy
from nas.search.strategies.evolution import RegularizedEvolution
from nas.search.strategies.grid import GridSearch
from nas.search.strategies.reinforce import Reinforce

ACC = [Objective("accuracy", "max")]
# A small space with a depth choice: layers beyond the picked depth are inactive.
SPACE_TEXT = """
name: toy
input: {channels: 1, size: 8}
classes: 10
choices:
  ops: {a: {op: ir, k: 3, e: 1}, b: {op: ir, k: 5, e: 1}, c: {op: ir, k: 3, e: 3}}
stem: [{op: conv, k: 3, c: 8, s: 1}]
stages:
  - {block: $ops, c: 8, n: {choice: [1, 2, 3]}, s: 1}
  - {op: ir, k: {choice: [3, 5]}, e: 1, c: 16, n: 1, s: 2}
head: [{op: classifier}]
"""
SPACE = dsl.loads(SPACE_TEXT)


def toy_accuracy(assignment: dict) -> float:
    """A fixed, learnable landscape: 'c' blocks, depth 3 and k=5 are good."""
    score = sum(v == "c" for k, v in assignment.items() if ".layers." in k and k.startswith("stages.0"))
    return 0.5 + 0.1 * score + 0.05 * (assignment["stages.1.layers.0.k"] == "5")


def drive(strategy, n: int, fn=toy_accuracy) -> list[dict]:
    proposals = []
    for _ in range(n):
        number, assignment = strategy.ask()
        proposals.append(assignment)
        strategy.tell(number, Outcome("ok", [fn(assignment)]))
    return proposals


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce", "tpe", "nsga2"])
def test_same_seed_same_proposals(name):
    runs = [drive(make_strategy(name, SPACE, ACC, seed=seed), 14) for seed in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("name", ["random", "evolution", "reinforce", "tpe", "nsga2", "grid"])
def test_proposals_use_only_active_choices(name):
    strategy = make_strategy(name, SPACE, ACC, seed=0)
    for assignment in drive(strategy, 12):
        depth = int(assignment["stages.0.n"])
        layers = {k for k in assignment if k.startswith("stages.0.layers.")}
        assert layers == {f"stages.0.layers.{j}" for j in range(depth)}
        SPACE.resolve(assignment)  # resolves without the inactive choices


def test_grid_covers_the_space_once_then_stops():
    strategy = make_strategy("grid", SPACE, ACC)
    seen = drive(strategy, SPACE.size())
    assert len({tuple(sorted(a.items())) for a in seen}) == SPACE.size() == (3 + 9 + 27) * 2
    with pytest.raises(Exhausted):
        strategy.ask()


def test_grid_refuses_a_huge_space():
    fbnet = dsl.load("search_spaces/fbnet.yaml")
    with pytest.raises(SpecError, match="grid over space 'fbnet'"):
        make_strategy("grid", fbnet, ACC)


def test_evolution_ages_out_the_oldest_not_the_worst():
    strategy = RegularizedEvolution(SPACE, ACC, {"population": 3, "sample": 2}, seed=0)
    told = []
    for value in (0.99, 0.1, 0.2, 0.3):  # the best arrives first, so aging (not fitness) must remove it
        number, assignment = strategy.ask()
        strategy.tell(number, Outcome("ok", [value]))
        told.append((assignment, value))
    assert [fit for _, fit in strategy.population] == [0.1, 0.2, 0.3]
    assert list(strategy.population) == told[1:]


def test_evolution_children_differ_from_their_parent_in_one_choice(monkeypatch):
    strategy = RegularizedEvolution(SPACE, ACC, {"population": 4, "sample": 2}, seed=1)
    drive(strategy, 4)
    parents = []
    real = strategy.mutate
    monkeypatch.setattr(strategy, "mutate", lambda parent: parents.append(dict(parent)) or real(parent))
    for i in range(10):
        population = [a for a, _ in strategy.population]
        number, child = strategy.ask()
        strategy.tell(number, Outcome("ok", [toy_accuracy(child)]))
        assert len(parents) == i + 1 and parents[-1] in population  # the parent is a current member
        assert child != parents[-1] and _one_mutation(parents[-1], child), (parents[-1], child)


def test_evolution_mutates_every_choice_of_two_or_more_options_and_never_a_single_option_one():
    """A one-option choice (a width fixed for now, kept as a choice) cannot change: mutation must skip it, and
    two-option choices are as mutable as larger ones."""
    space = dsl.loads(SPACE_TEXT.replace("n: {choice: [1, 2, 3]}", "n: 2").replace(
        "e: 1, c: 16", "e: {choice: [4]}, c: 16"))
    assert len(space.choices()["stages.1.layers.0.e"]) == 1 and len(space.choices()["stages.1.layers.0.k"]) == 2
    strategy = RegularizedEvolution(space, ACC, {"population": 4, "sample": 2}, seed=0)
    parent = space.sample(0)
    changed = set()
    for _ in range(60):
        child = strategy.mutate(parent)
        diff = [k for k in child if child[k] != parent[k]]
        assert len(diff) == 1, (parent, child)
        changed.update(diff)
    assert changed == {"stages.0.layers.0", "stages.0.layers.1", "stages.1.layers.0.k"}


def _one_mutation(parent: dict, child: dict) -> bool:
    changed = [k for k in child if k in parent and child[k] != parent[k]]
    return len(changed) == 1 and (all(k in parent for k in child) or changed == ["stages.0.n"])


def test_evolution_ignores_failed_and_rejected():
    strategy = RegularizedEvolution(SPACE, ACC, {"population": 3, "sample": 2}, seed=0)
    n0, _ = strategy.ask()
    n1, _ = strategy.ask()
    strategy.tell(n0, Outcome("failed"))
    strategy.tell(n1, Outcome("rejected", [0.0], [0.5]))
    assert len(strategy.population) == 0


def test_reinforce_moves_probability_toward_the_rewarded_option():
    strategy = Reinforce(SPACE, ACC, {"lr": 0.5, "entropy": 0.0}, seed=0)
    name = "stages.1.layers.0.k"
    before = strategy.policy(name)[1]  # p(k=5)
    drive(strategy, 60, fn=lambda a: 1.0 if a[name] == "5" else 0.0)
    after = strategy.policy(name)[1]
    assert before == pytest.approx(0.5)
    assert after > 0.9


def test_reinforce_single_update_direction():
    strategy = Reinforce(SPACE, ACC, {"lr": 1.0, "entropy": 0.0, "baseline_decay": 0.0}, seed=0)
    name = "stages.1.layers.0.k"
    n0, a0 = strategy.ask()
    strategy.tell(n0, Outcome("ok", [0.5]))  # sets the baseline: zero advantage, no move
    assert strategy.policy(name) == pytest.approx([0.5, 0.5])
    n1, a1 = strategy.ask()
    strategy.tell(n1, Outcome("ok", [0.1]))  # below the baseline: the picked option becomes less likely
    picked = SPACE.choices()[name].keys.index(a1[name])
    assert strategy.policy(name)[picked] < 0.5


def test_reinforce_penalizes_rejected_candidates():
    strategy = Reinforce(SPACE, ACC, {"lr": 1.0, "entropy": 0.0, "penalty": -1.0}, seed=0)
    name = "stages.1.layers.0.k"
    for _ in range(30):
        number, a = strategy.ask()
        if a[name] == "5":
            strategy.tell(number, Outcome("rejected", [0.0], [0.3]))
        else:
            strategy.tell(number, Outcome("ok", [0.6]))
    assert strategy.policy(name)[1] < 0.2


def test_reinforce_mnasnet_reward():
    costs = {"flops": 2e6, "params": 1.0, "latency": None}
    strategy = Reinforce(SPACE, ACC, {"reward_metric": "flops", "reward_target": "1M", "reward_w": -0.07},
                         costs=lambda a: costs)
    assert strategy.reward(Outcome("ok", [0.8]), {}) == pytest.approx(0.8 * 2 ** -0.07)


@pytest.mark.parametrize("name", ["tpe", "nsga2"])
def test_optuna_records_constraints_and_failures(name, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    objectives = ACC if name == "tpe" else ACC + [Objective("flops", "min")]
    strategy = make_strategy(name, SPACE, objectives, seed=0, storage=storage, study_name="s",
                             constraints=[Constraint("flops", "<=", 10.0, "<= 10")])
    rng = random.Random(0)
    for i in range(10):
        number, assignment = strategy.ask()
        if i % 3 == 0:
            strategy.tell(number, Outcome("failed"))
        else:
            violation = rng.choice([-0.5, 0.7])
            status = "rejected" if violation > 0 else "ok"
            values = [0.0 if status == "rejected" else 0.7] + ([12.0] if name == "nsga2" else [])
            strategy.tell(number, Outcome(status, values, [violation]))
    strategy.close()
    import optuna

    study = optuna.load_study(study_name="s", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states.count("FAIL") == 4 and states.count("COMPLETE") == 6
    assert all(list(t.constraints.values()) in ([-0.5], [0.7]) for t in study.trials if t.state.name == "COMPLETE")
    # every suggested parameter is an active choice
    for t in study.trials:
        depth = int(t.params["stages.0.n"])
        assert {k for k in t.params if k.startswith("stages.0.layers.")} == \
            {f"stages.0.layers.{j}" for j in range(depth)}


def test_evolution_makes_exactly_population_random_proposals_then_mutates(monkeypatch):
    strategy = RegularizedEvolution(SPACE, ACC, {"population": 4, "sample": 2}, seed=2)
    mutated = []
    real = strategy.mutate
    monkeypatch.setattr(strategy, "mutate", lambda parent: mutated.append(parent) or real(parent))
    for expected in (0, 0, 0, 0, 1, 2):  # the first four fill the population at random, then children
        drive(strategy, 1)
        assert len(mutated) == expected


@pytest.mark.parametrize("cls,option,good,bad", [
    (RegularizedEvolution, "population", [2, 16], [1, 0]),
    (RegularizedEvolution, "sample", [1, 4], [0, -1]),
    (Reinforce, "baseline_decay", [0.0, 0.8, 0.999], [1.0, -0.01]),
    (Reinforce, "lr", [1e-6, 0.3], [0.0, -1.0]),
    (Reinforce, "entropy", [0.0, 0.01], [-1e-9]),
    (Reinforce, "reward_w", [0.0, -0.07], [1e-9]),
    (GridSearch, "max_size", [1, 10_000], [0, -5]),
])
def test_option_bounds_are_inclusive_where_the_hint_says(cls, option, good, bad):
    check = cls.OPTIONS[option].check
    assert all(check(v) for v in good) and not any(check(v) for v in bad)


def test_grid_visits_in_order_unless_shuffled_and_its_size_limit_is_inclusive():
    from nas.dsl.walk import enumerate_all

    in_order = [dict(p) for p in enumerate_all(SPACE)]
    assert drive(make_strategy("grid", SPACE, ACC), 5) == in_order[:5]  # no shuffle by default
    shuffled = drive(GridSearch(SPACE, ACC, {"shuffle": True}, seed=0), SPACE.size())
    assert shuffled != in_order and sorted(map(str, shuffled)) == sorted(map(str, in_order))
    assert len(GridSearch(SPACE, ACC, {"max_size": SPACE.size()}).points) == SPACE.size() == 78
    with pytest.raises(SpecError, match="would have 78 points, more than strategy.max_size 77"):
        GridSearch(SPACE, ACC, {"max_size": 77})
    assert GridSearch.OPTIONS["max_size"].default == 10_000  # the documented default


def test_evolution_stops_random_proposals_after_population_many_even_if_some_failed(monkeypatch):
    """The random phase is `population` proposals, not `population` successes: a failed one is not retried."""
    strategy = RegularizedEvolution(SPACE, ACC, {"population": 3, "sample": 2}, seed=2)
    mutated = []
    real = strategy.mutate
    monkeypatch.setattr(strategy, "mutate", lambda parent: mutated.append(parent) or real(parent))
    for outcome in ("ok", "ok", "failed"):
        number, _ = strategy.ask()
        strategy.tell(number, Outcome(outcome, [0.5] if outcome == "ok" else None))
    assert len(strategy.population) == 2 and not mutated
    strategy.ask()
    assert len(mutated) == 1  # the fourth proposal is a child of the two that trained
