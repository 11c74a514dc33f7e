"""`nas search` with `strategy: dnas`: bad recipes are one-line errors; a tiny recipe runs end to end."""
from __future__ import annotations

import json

import pytest

from nas.cli import main
from test_dnas import TINY_FBNET

BASE = """
name: tiny
space: {{source: {space}, size: 32, classes: 10}}
data: {{name: digits, size: 32}}
strategy: {{name: dnas, {options}}}
seed: 0
"""


def _run(tmp_path, capsys, space: str = "fbnet_small.yaml", options: str = "epochs: 2, warmup: 1", extra: list[str] = ()):
    (tmp_path / "fbnet_small.yaml").write_text(TINY_FBNET.replace("size: 16", "size: 32"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(BASE.format(space=space, options=options))
    code = main(["search", str(recipe), "-o", str(tmp_path / "run"), "--quiet", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    ("alpha: -1", "bad value -1.0 for strategy.alpha"),
    ("cost: energy", "strategy.cost must be one of flops, params, latency"),
    ("mode: dense", "strategy.mode must be one of mixture, single_path, softmax"),
    ("epochs: 2, warmup: 2", "warmup (2) must be shorter than epochs (2)"),
    ("temperature: 0", "bad value 0.0 for strategy.temperature"),
])
def test_bad_dnas_options_are_one_line_errors(tmp_path, capsys, options, message):
    code, err = _run(tmp_path, capsys, options=options)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert "r.yaml:" in err  # located in the recipe


def test_a_space_without_choices_is_a_one_line_error(tmp_path, capsys):
    code, err = _run(tmp_path, capsys, space="fbnet_a")
    assert code == 2 and err.count("\n") == 1 and "has no choices" in err


def test_the_cost_loss_on_darts_edges_is_refused(tmp_path, capsys):
    code, err = _run(tmp_path, capsys, space="darts", options="cells: edges, alpha: 0.2, epochs: 2, warmup: 1")
    assert code == 2 and "slots parametrization" in err


@pytest.mark.slow
def test_a_tiny_dnas_recipe_runs_end_to_end(tmp_path, capsys):
    code, _ = _run(tmp_path, capsys, options="mode: single_path, epochs: 2, warmup: 1, samples: 2",
                   extra=["--set", "retrain.epochs=1", "--set", "retrain.inherit=true"])
    assert code == 0
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history[1]["theta"]
    assert summary["best"]["flops"] == pytest.approx(history[-1]["derived_cost"])
    low, high = summary["space_flops"]["smallest"], summary["space_flops"]["largest"]
    assert low <= summary["best"]["flops"] <= high
    assert (run / "best.arch.yaml").read_text() == (run / "best" / "arch.yaml").read_text()
    assert (run / "best" / "weights.pt").is_file()
    assert main(["export", str(run), "--format", "yaml,weights", "-o", str(tmp_path / "export"), "--quiet"]) == 0
    import torch  # the export carries the retrained weights, not a fresh initialization

    exported = torch.load(tmp_path / "export" / "weights.pt", weights_only=True)
    trained = torch.load(run / "best" / "weights.pt", weights_only=True)
    trained = trained.get("model", trained) if isinstance(trained, dict) else trained
    assert exported.keys() == trained.keys() and all(torch.equal(exported[k], trained[k]) for k in exported)
    assert len(list((run / "samples").glob("*.arch.yaml"))) == 2
    assert 0 <= summary["retrain"]["test_acc"] <= 1 and summary["retrain"]["inherit"] is True
