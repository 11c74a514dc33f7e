"""Recipes: parsing, defaults, --set, and bad recipes as one-line located errors (exit 2)."""
import re
from pathlib import Path

import pytest

from nas.cli import main
from nas.dsl.errors import SpecError
from nas.recipe import STRATEGIES, load_recipe, loads_recipe
from rule_sites import RECIPE_CORPUS, expectation

GOOD = """
space: {source: fbnet, width: 0.25, depth: 0.25}
strategy: {name: evolution, population: 4}
objectives: [accuracy]
constraints: {flops: "<= 20M", params: "<= 1M"}
train: {epochs: 2}
budget: {trials: 5, time: 10m}
early_stop: {asha: {grace: 1, reduction: 3}}
resources: {cpus: 2, cpus_per_trial: 1}
seed: 3
"""


def test_a_recipe_with_defaults_and_overrides():
    recipe = loads_recipe(GOOD, "r.yaml", ["budget.trials=9", "strategy.sample=2", "train.lr=0.1"])
    assert recipe.strategy.name == "evolution"
    assert recipe.strategy.options == {"population": 4, "sample": 2}
    assert recipe.budget.trials == 9 and recipe.budget.time_s == 600
    assert [(c.metric, c.op, c.limit) for c in recipe.constraints] == [("flops", "<=", 20e6), ("params", "<=", 1e6)]
    assert recipe.train["lr"] == 0.1 and recipe.train["epochs"] == 2
    assert recipe.resources.concurrency == 2 and recipe.seed == 3
    again = loads_recipe(recipe.to_yaml(), "again.yaml")  # the resolved recipe reads back the same
    assert again.as_dict() == recipe.as_dict()


def test_short_forms_and_generic_sections():
    recipe = loads_recipe("space: nasnet\nstrategy: random\nretrain: {epochs: 5, inherit: true}\n", "r.yaml",
                          ["strategy.dedupe=false"])
    assert recipe.space.source == "nasnet" and recipe.strategy.options == {"dedupe": False}
    assert recipe.retrain == {"epochs": 5, "inherit": True}
    dnas = loads_recipe("space: fbnet\nstrategy: dnas\nsweep: {strategy.lr: [0.1, 0.2]}\n", "r.yaml")
    assert dnas.sweep == {"strategy.lr": [0.1, 0.2]}


def test_every_multi_trial_strategy_declares_options():
    from nas.recipe import Option, strategy_info

    for name in STRATEGIES:
        if name != "dnas":
            recipe = loads_recipe(f"space: fbnet\nstrategy: {name}\n", "r.yaml")
            assert recipe.strategy.name == name
            declared = strategy_info(name).OPTIONS
            assert declared and all(isinstance(o, Option) for o in declared.values()), name
            # its declared options are what the recipe checks against: the real ones pass, others are refused
            key = next(iter(declared))
            ok = loads_recipe(f"space: fbnet\nstrategy: {name}\n", "r.yaml",
                              [f"strategy.{key}={_yaml_value(declared[key].default)}"])
            assert ok.strategy.options[key] == declared[key].default
            with pytest.raises(SpecError, match=f"unknown option 'bogus' of strategy '{name}'"):
                loads_recipe(f"space: fbnet\nstrategy: {name}\n", "r.yaml", ["strategy.bogus=1"])


def _yaml_value(value) -> str:
    import json

    return json.dumps(value)




def test_cluster_keys_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = loads_recipe("space: fbnet\nstrategy: tpe\nray: {address: 'head:6379', storage_path: results, "
                          "max_failures: 2}\nstorage: postgresql://u@db/nas\nstudy_name: shared\n", "r.yaml")
    assert recipe.ray_storage_path == str(tmp_path / "results")  # absolute: a resume may start elsewhere
    assert (recipe.ray_address, recipe.max_failures, recipe.study_name) == ("head:6379", 2, "shared")
    again = loads_recipe(recipe.to_yaml(), "again.yaml")
    assert again.as_dict() == recipe.as_dict()
    assert loads_recipe("space: fbnet\nstrategy: tpe\nray: {storage_path: 's3://b/nas'}\n").ray_storage_path \
        == "s3://b/nas"


@pytest.mark.parametrize("path", RECIPE_CORPUS, ids=[p.stem for p in RECIPE_CORPUS])
def test_malformed_recipe_gets_one_located_line_and_exit_2(path, tmp_path, capsys):
    """tests/malformed_recipes/: one file per rule (tests/test_rule_coverage.py checks each hits its rule)."""
    expect = expectation(path)
    assert main(["search", str(path), "-o", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.err.count("\n") == 1, captured.err
    match = re.match(r"^error: (?P<file>.+\.yaml):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", lines[0])
    assert match and match.group("file") == str(path), lines[0]
    assert int(match.group("line")) == expect.line, lines[0]
    assert expect.fragment in match.group("msg"), lines[0]
    assert expect.hint is None or expect.hint in match.group("msg"), lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert not (tmp_path / "run").exists()  # nothing written


@pytest.mark.parametrize("override,message", [
    ("budget.trials", "--set expects key.path=value"),
    ("budget..trials=3", "bad key path"),
    ("seed.x=3", "'seed' is not a mapping"),
    ("budget.trials=[1", "YAML syntax"),
    ("strategy.populaton=3", "unknown option 'populaton'"),
])
def test_bad_overrides(override, message, tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(GOOD)
    assert main(["search", str(path), "--set", override, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "--set" in err


def test_space_and_strategy_errors_before_the_run_folder(tmp_path, capsys):
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("space: {source: resnet18}\nstrategy: random\n")
    grid = tmp_path / "grid.yaml"
    grid.write_text("space: {source: fbnet, width: 0.25}\nstrategy: grid\n")
    tight = tmp_path / "tight.yaml"
    tight.write_text("space: {source: fbnet, width: 0.25, depth: 0.25}\nstrategy: random\n"
                     "constraints:\n  flops: '<= 20K'\n")
    for path, message, where in ((fixed, "has no choices: there is nothing to search", ":1:"),
                                 (grid, "a grid over space 'fbnet' would have", ":2:"),
                                 (tight, "constraint flops <= 20K cannot hold: the smallest architecture", ":4:")):
        assert main(["search", str(path), "-o", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and f"{path}{where}" in err, err
        assert not (tmp_path / "run").exists()


def test_resume_needs_a_search_run(tmp_path, capsys):
    assert main(["search", "--resume", str(tmp_path)]) == 2
    assert "no recipe.yaml" in capsys.readouterr().err
    with pytest.raises(SpecError, match="is a directory"):
        load_recipe(tmp_path)


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["nasnet_evolution", "nasnet_reinforce", "fbnet_tpe", "pareto",
                                  "efficientnet_coefficients"])
def test_shipped_recipes_load(name):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert recipe.name == name and recipe.data.name == "digits" and recipe.data.size == 32
    assert recipe.budget.time_s is not None and recipe.budget.time_s <= 600
    space = recipe.load_space()
    assert space.choices() and space.doc["input"]["size"] == 32


def test_efficientnet_coefficients_are_one_choice_of_a_space():
    from nas.scaling import apply, coefficient_grid, multipliers

    recipe = load_recipe(ROOT / "recipes" / "efficientnet_coefficients.yaml")
    space = recipe.load_space()
    choice = space.choices()["coefficients"]
    assert list(space.choices()) == ["coefficients"] and space.size() == len(coefficient_grid(0.1, 0.1)) == 20
    key = "a1.2_b1_g1.3"
    assert choice.values[key] == [1.2, 1.0, 1.3]
    arch = space.resolve({"coefficients": key})
    base = space.base
    expected = apply(base, multipliers(1.0, 1.2, 1.0, 1.3))
    assert arch.doc["stages"] == expected.doc["stages"] and arch.doc["input"] == expected.doc["input"]
    assert arch.plan().input_shape[-1] == 40  # γ = 1.3 at 32 → 41.6, to the nearest multiple of 8
    assert space.walk(lambda name, c: key) == {"coefficients": key}
    command = "nas scale efficientnet_b0 --phi PHI --alpha 1.2 --beta 1 --gamma 1.3"
    assert command in space.explain({"coefficients": key})
    assert base.doc["bn"]["momentum"] == 0.1  # the recipe's space.bn override


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "recipes").glob("*.yaml")))
def test_every_shipped_recipe_reads_back_from_its_saved_form(name, tmp_path):
    """`--resume` and a sweep's members load the recipe.yaml a run wrote: unset optional options (written as
    null), sweeps and every section must read back as the same recipe."""
    recipe = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / f"{name}.yaml")
    saved = tmp_path / "recipe.yaml"
    saved.write_text(recipe.to_yaml())
    assert load_recipe(saved).as_dict() == recipe.as_dict()
