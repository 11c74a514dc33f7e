"""`nas report` and `nas show --figure`: figures from small real run folders, the table against trials.csv,
report.md, a run in progress, and bad input through the CLI."""
from __future__ import annotations

import csv
import fcntl
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nas.cli import main

MIN_BYTES = 8_000
MIN_STD = 0.04


def assert_picture(path: Path) -> None:
    """A real picture: not tiny, not blank (pixel values vary)."""
    from matplotlib.image import imread

    assert path.is_file(), path
    assert path.stat().st_size > MIN_BYTES, (path, path.stat().st_size)
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert float(pixels[..., :3].std()) > MIN_STD, path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- run folders made by real (tiny) searches ----------------------------------------------------------------
TRIALS_RECIPE = """
name: tiny_trials
space: {source: fbnet, width: 0.25, depth: 0.25}
data: {name: digits, size: 32}
strategy: {name: random}
objectives: [accuracy]
train: {epochs: 1, batch_size: 256, lr: 0.05, warmup_epochs: 0}
budget: {trials: 4}
resources: {cpus: 2, cpus_per_trial: 1, concurrency: 2}
seed: 0
"""

DNAS_RECIPE = """
name: tiny_dnas
space: {source: fbnet, width: 0.25, depth: 0.25, size: 32, classes: 10}
data: {name: digits, size: 32}
strategy: {name: dnas, mode: mixture, epochs: 2, warmup: 1, batch_size: 256, samples: 1}
train: {epochs: 1, batch_size: 256}
seed: 0
"""


def _search(folder: Path, recipe: str, name: str, *sets: str) -> Path:
    (folder / f"{name}.yaml").write_text(textwrap.dedent(recipe))
    out = folder / name
    argv = ["--quiet", "search", str(folder / f"{name}.yaml"), "-o", str(out)]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="session")
def trials_run(tmp_path_factory, ray_session) -> Path:
    return _search(tmp_path_factory.mktemp("report"), TRIALS_RECIPE, "trials")


@pytest.fixture(scope="session")
def coefficients_run(tmp_path_factory, ray_session) -> Path:
    recipe = Path(__file__).resolve().parent.parent / "recipes" / "efficientnet_coefficients.yaml"
    return _search(tmp_path_factory.mktemp("report"), recipe.read_text(), "coefficients", "budget.trials=2",
                   "train.epochs=1", "space.width=0.1")


@pytest.fixture(scope="session")
def dnas_run(tmp_path_factory) -> Path:
    return _search(tmp_path_factory.mktemp("report"), DNAS_RECIPE, "dnas")


def _report(run: Path, out: Path, *extra: str) -> int:
    return main(["report", str(run), "-o", str(out), "--dpi", "60", *extra])


def _embedded(markdown: str) -> set[str]:
    return set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown))


# -- multi-trial ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_trial_report_figures_and_markdown(trials_run, tmp_path, capsys):
    out = tmp_path / "rep"
    assert _report(trials_run, out, "--reference", "mobilenetv2,fbnet_c") == 0
    pngs = {p.name for p in out.glob("*.png")}
    assert {"progress.png", "pareto_flops.png", "pareto_params.png", "choices.png", "best_arch.png"} <= pngs
    for name in pngs:
        assert_picture(out / name)
    page = (out / "report.md").read_text()
    assert _embedded(page) == pngs  # every figure, and nothing that is not there
    assert (trials_run / "recipe.yaml").read_text().strip() in page
    assert "still running" not in capsys.readouterr().out


@pytest.mark.slow
def test_table_numbers_equal_trials_csv(trials_run, tmp_path):
    from nas.report import human

    with open(trials_run / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if r["status"] in ("ok", "stopped") and r["val_acc"]]
    trained.sort(key=lambda r: (r["status"] != "ok", -float(r["val_acc"]), int(r["trial"])))
    out = tmp_path / "rep"
    assert _report(trials_run, out, "--top", "100") == 0
    table = [line for line in (out / "report.md").read_text().splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(table) == len(trained) > 0
    for line, expected in zip(table, trained):
        cells = [c.strip() for c in line.strip("|").split("|")]
        rank, trial, status, acc, params, flops = cells[:6]
        assert (trial, status) == (expected["trial"], expected["status"])
        assert acc == f"{float(expected['val_acc']):.4f}"
        assert params == human(float(expected["params"]))
        assert flops == human(float(expected["flops"]))
    counts = {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}}
    page = (out / "report.md").read_text()
    assert f"{len(rows)} trial(s): " in page
    for status, n in counts.items():
        assert f"{n} {status}" in page


@pytest.mark.slow
def test_reference_points_are_counted_at_the_runs_scale(trials_run):
    from nas import zoo
    from nas.cost import count_arch
    from nas.reporting.load import load_run
    from nas.reporting.references import reference_points

    run = load_run(trials_run)
    (ref,) = reference_points(run, ["mobilenetv2"])
    import yaml

    best = yaml.safe_load((trials_run / "best.arch.yaml").read_text())  # digits: 1 channel, 32×32, 10 classes
    space = yaml.safe_load((trials_run / "recipe.yaml").read_text())["space"]  # the recipe's multipliers
    scaled = zoo.load("mobilenetv2").with_width(space["width"]).with_depth(space["depth"])
    scaled = scaled.with_input(channels=best["input"]["channels"], size=best["input"]["size"])
    scaled = scaled.with_classes(best["classes"])
    assert ref.flops == count_arch(scaled).total.flops
    assert ref.flops < count_arch(zoo.load("mobilenetv2")).total.flops / 10


@pytest.mark.slow
def test_report_on_a_run_in_progress(trials_run, tmp_path, capsys):
    """The lock held by another process (the search) and no trials.csv yet: the report reads events.jsonl,
    prints what finished and says it is still running, and writes nothing."""
    running = tmp_path / "running"
    shutil.copytree(trials_run, running, ignore=shutil.ignore_patterns("ray"))
    for name in ("trials.csv", "summary.json", "best.arch.yaml"):
        (running / name).unlink()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(running / '.lock')!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(120)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        capsys.readouterr()
        assert main(["report", str(running)]) == 0
        printed = capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    assert "still running" in printed
    assert "4 trial(s)" in printed
    assert not (running / "report").exists()


@pytest.mark.slow
def test_coefficients_report(coefficients_run, tmp_path):
    out = tmp_path / "rep"
    assert _report(coefficients_run, out) == 0
    assert_picture(out / "coefficients.png")
    assert "coefficients.png" in _embedded((out / "report.md").read_text())


# -- DNAS ----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_dnas_report_figures(dnas_run, tmp_path, capsys):
    out = tmp_path / "rep"
    assert _report(dnas_run, out) == 0
    pngs = {p.name for p in out.glob("*.png")}
    assert {"theta.png", "cost.png", "accuracy.png", "best_arch.png"} <= pngs
    for name in pngs:
        assert_picture(out / name)
    page = (out / "report.md").read_text()
    assert _embedded(page) == pngs
    history = __import__("json").loads((dnas_run / "history.json").read_text())
    for epoch in history:  # the epoch table holds the history's accuracies
        assert f"{epoch['val_acc']:.4f}" in page
    assert "E[cost]" in capsys.readouterr().out


@pytest.mark.slow
def test_dnas_report_again_replaces_the_report_but_never_a_run(dnas_run, tmp_path, capsys):
    out = tmp_path / "rep"
    assert _report(dnas_run, out) == 0
    assert _report(dnas_run, out) == 0  # a report folder is replaced
    assert _report(dnas_run, dnas_run) == 2  # never the run folder itself
    assert "would hold the run folder" in one_error_line(capsys.readouterr().err)
    assert (dnas_run / "history.json").is_file()


# -- bad input (fast: folders a search would leave after a crash or a user mistake) --------------------------
def _run_folder(path: Path) -> Path:
    from nas.runs import RunDir

    RunDir.create(path, kind="search").close()
    return path


CSV_HEADER = "trial,status,a,val_acc,flops,params,latency_ms,epochs,seconds,error\n"


def _ended_run(path: Path, trials_csv: bytes) -> Path:
    """A run folder as a finished search leaves it, with the given trials.csv."""
    run = _run_folder(path)
    (run / "recipe.yaml").write_text(textwrap.dedent(TRIALS_RECIPE))
    (run / "summary.json").write_text("{}")
    (run / "trials.csv").write_bytes(trials_csv)
    return run


def test_not_a_run_folder(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("hello")
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in one_error_line(capsys.readouterr().err)
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in one_error_line(capsys.readouterr().err)


def test_empty_run(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    assert main(["report", str(run)]) == 2
    assert "empty run" in one_error_line(capsys.readouterr().err)


def test_run_without_a_finished_trial(tmp_path, capsys):
    run = _run_folder(tmp_path / "run")
    (run / "recipe.yaml").write_text(textwrap.dedent(TRIALS_RECIPE))
    (run / "events.jsonl").write_text('{"event": "ask", "number": 0, "assignment": {}}\n')
    assert main(["report", str(run)]) == 2
    assert "no finished trial" in one_error_line(capsys.readouterr().err)


def test_no_trained_trial_is_a_one_line_error(tmp_path, capsys):
    """Every trial rejected or failed: the search ended, but there is nothing to rank."""
    run = _ended_run(tmp_path / "run", (CSV_HEADER + "0,rejected,x,,900000,20,,0,0.0,\n"
                                                      "1,failed,y,,1000,20,,1,3.0,NaN loss\n").encode())
    assert main(["report", str(run)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "no trial finished training" in line and "1 rejected" in line and "1 failed" in line


@pytest.mark.parametrize("text, message", [
    ("", "trials.csv is empty"),
    ("number,what\n1,2\n", "unexpected header"),
    (CSV_HEADER + "0,ok,x,0.5,1,2,,1,3.0\n", "fields"),
    (CSV_HEADER + "0,ok,x,high,1,2,,1,3.0,\n", "val_acc 'high' is not a number"),
    (CSV_HEADER + "0,great,x,0.5,1,2,,1,3.0,\n", "unknown trial status"),
    ("\x00\xff\xfe garbage", "trials.csv"),
])
def test_corrupted_trials_csv(tmp_path, capsys, text, message):
    run = _ended_run(tmp_path / "run", text.encode("latin-1"))
    assert main(["report", str(run)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert message in line and "trials.csv" in line


def test_trials_csv_with_node_columns_reads(tmp_path):
    """Runs on a Ray cluster add node_ip and node_id before the error column."""
    from nas.reporting.load import load_run

    header = CSV_HEADER.replace("seconds,error", "seconds,node_ip,node_id,error")
    run = load_run(_ended_run(tmp_path / "run", (header + "0,ok,x,0.5,1000,20,,1,3.0,10.0.0.2,n1,\n").encode()))
    (record,) = run.records
    assert (record.val_acc, record.flops, record.node_ip, record.error) == (0.5, 1000.0, "10.0.0.2", "")


def test_bad_reference_name(tmp_path, capsys):
    run = _ended_run(tmp_path / "run", (CSV_HEADER + "0,ok,x,0.5,1000,20,,1,3.0,\n").encode())
    assert main(["report", str(run), "--reference", "mobilenet_v2"]) == 2
    assert "did you mean 'mobilenetv2'" in one_error_line(capsys.readouterr().err)


# -- nas show --figure ---------------------------------------------------------------------------------------
def _zoo_names() -> list[str]:
    from test_zoo import NAMES  # the zoo's fixed architectures, found once (loading every file takes a while)

    return NAMES


@pytest.mark.parametrize("name", _zoo_names())
def test_every_zoo_architecture_draws(name, tmp_path):
    from nas import zoo
    from nas.reporting.figures.arch import arch_figure
    from nas.reporting.figures.common import png_bytes

    path = tmp_path / f"{name}.png"
    path.write_bytes(png_bytes(arch_figure(zoo.load(name)), dpi=50))
    assert_picture(path)


@pytest.mark.parametrize("space, seed", [("fbnet", 0), ("fbnet", 7), pytest.param("nasnet", 0, marks=pytest.mark.slow),
                                         ("darts", 3)])  # NASNet: seconds
def test_show_figure_of_sampled_architectures(space, seed, tmp_path, capsys, monkeypatch):
    path = tmp_path / "arch.png"
    argv = ["--quiet", "show", f"search_spaces/{space}.yaml", "--sample", str(seed), "--input-size", "32",
            "--figure", str(path), "--dpi", "50"]
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert main(argv) == 0, capsys.readouterr().err
    assert_picture(path)


def test_show_figure_of_a_zoo_name(tmp_path, capsys):
    path = tmp_path / "fbnet_c.png"
    assert main(["show", "fbnet_c", "--input-size", "32", "--figure", str(path), "--dpi", "50"]) == 0
    assert_picture(path)
    assert f"figure: {path}" in capsys.readouterr().out


def test_show_figure_errors(tmp_path, capsys):
    assert main(["show", "fbnet", "--figure", str(tmp_path / "a.png")]) == 2
    assert "--sample" in one_error_line(capsys.readouterr().err)
    assert main(["show", "fbnet_c", "--figure", str(tmp_path / "a.jpg")]) == 2
    assert "PNG" in one_error_line(capsys.readouterr().err)
    assert main(["show", "fbnet_c", "--figure", str(tmp_path / "no" / "a.png")]) == 2
    assert "no folder" in one_error_line(capsys.readouterr().err)


def test_cell_layout_puts_nodes_after_their_inputs():
    from nas import zoo
    from nas.reporting.figures.arch_cells import cell_edges, layout

    cell = zoo.load("darts_v2").doc["cells"]["reduction"]
    edges = cell_edges(cell)
    states, ops = layout(len(cell["nodes"]), edges)
    for k, (source, target, _) in enumerate(edges):
        assert states[source][0] < ops[k][0] < states[target][0]
    assert states["concat"][0] == max(x for x, _ in states.values())
    assert {s for s, _, _ in edges} <= set(states)


def test_best_so_far_is_monotone():
    from nas.reporting.figures.progress import best_so_far

    assert best_so_far([(2, 0.5), (0, 0.3), (1, 0.2), (3, 0.4)], maximize=True) == [(0, 0.3), (1, 0.3), (2, 0.5),
                                                                                    (3, 0.5)]
    assert [y for _, y in best_so_far([(0, 5.0), (1, 7.0), (2, 1.0)], maximize=False)] == [5.0, 5.0, 1.0]


def test_lock_held_sees_another_process(tmp_path):
    from nas.reporting.load import lock_held

    run = _run_folder(tmp_path / "run")
    assert not lock_held(run)
    fd = os.open(run / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        child = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                                "from nas.reporting.load import lock_held; "
                                f"sys.exit(0 if lock_held(Path({str(run)!r})) else 1)"],
                               env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
        assert child.returncode == 0
    finally:
        os.close(fd)
