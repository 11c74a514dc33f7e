"""Search results as pure data: ranking, the Pareto front, the summary counts, trials.csv and the event log,
each checked against answers worked out by hand."""
from __future__ import annotations

import csv
import io
import json

import pytest

from nas.recipe import Objective
from nas.search.results import (Record, json_line, pareto_front, progress_line, ranked, read_events, summary,
                                trials_csv)
from test_search import tiny_space  # two stages, each one layer of k3, k5 or skip

ACC, FLOPS = Objective("accuracy", "max"), Objective("flops", "min")


def rec(number, status="ok", acc=None, flops=None, **kw):
    return Record(number, status, {"a": f"x{number}"}, val_acc=acc, flops=flops, **kw)


def test_ranked_keeps_ok_before_stopped_best_first_ties_to_the_earlier_trial():
    records = [rec(0, acc=0.5), rec(1, "stopped", acc=0.99), rec(2, acc=0.9), rec(3, acc=0.9), rec(4, "failed"),
               rec(5, "rejected", acc=1.0), rec(6, acc=None), rec(7, "duplicate", acc=1.0)]
    assert [r.number for r in ranked(records, ACC)] == [2, 3, 0, 1]
    cheap = [rec(0, flops=300.0), rec(1, flops=100.0), rec(2, flops=200.0)]
    assert [r.number for r in ranked(cheap, FLOPS)] == [1, 2, 0]


def test_pareto_front_by_hand():
    # (acc, flops): 1 dominates 0; 2 and 3 are equal (both stay); 4 trades accuracy for FLOPs; 5 is stopped
    records = [rec(0, acc=0.5, flops=200.0), rec(1, acc=0.6, flops=200.0), rec(2, acc=0.8, flops=400.0),
               rec(3, acc=0.8, flops=400.0), rec(4, acc=0.4, flops=50.0), rec(5, "stopped", acc=0.9, flops=10.0),
               rec(6, acc=0.7, flops=500.0), rec(7, acc=None, flops=1.0)]
    assert [r.number for r in pareto_front(records, [ACC, FLOPS])] == [1, 2, 3, 4]
    assert [r.number for r in pareto_front(records, [ACC])] == [2, 3]


def test_summary_counts_each_status_and_what_was_trained():
    records = [rec(0, acc=0.5), rec(1, "stopped", acc=0.4), rec(2, "failed"), rec(3, "rejected"),
               rec(4, "duplicate"), rec(5, acc=0.7)]
    out = summary(records, [ACC], "demo", 12.345, ranked(records, ACC)[:1])
    assert out["counts"] == {"ok": 2, "stopped": 1, "failed": 1, "rejected": 1, "duplicate": 1}
    assert out["trials"] == 6 and out["trained"] == 4  # rejected and duplicate trials never trained
    assert out["seconds"] == 12.35 and out["objectives"] == [{"accuracy": "max"}]
    assert [b["number"] for b in out["best"]] == [5]


def test_trials_csv_columns_order_and_empty_cells():
    records = [rec(1, acc=0.25, flops=float("nan"), seconds=1.0, node_ip="10.0.0.2", node_id="n1"),
               rec(0, "failed", error="boom", seconds=0.5)]
    rows = list(csv.reader(io.StringIO(trials_csv(records, ["a", "b"]))))
    assert rows[0] == ["trial", "status", "a", "b", "val_acc", "flops", "params", "latency_ms", "epochs",
                       "seconds", "node_ip", "node_id", "error"]
    assert rows[1] == ["0", "failed", "x0", "", "", "", "", "", "0", "0.50", "", "", "boom"]
    assert rows[2] == ["1", "ok", "x1", "", "0.25", "", "", "", "0", "1.00", "10.0.0.2", "n1", ""]


def test_event_log_drops_only_a_torn_last_line(tmp_path):
    # one canonical line per event: keys sorted, non-finite floats as null (strict JSON)
    assert json_line({"b": float("nan"), "a": [1, float("-inf"), 0.5]}) == '{"a": [1, null, 0.5], "b": null}'
    path = tmp_path / "events.jsonl"
    assert read_events(path) == []
    path.write_text(json_line({"a": 1}) + "\n\n" + json_line({"b": float("inf")}) + "\n" + '{"torn', encoding="utf-8")
    assert read_events(path) == [{"a": 1}, {"b": None}]  # non-finite floats are written as null
    path.write_text('{"torn\n' + json_line({"a": 1}) + "\n", encoding="utf-8")
    with pytest.raises(json.JSONDecodeError, match="Unterminated string"):
        read_events(path)  # a bad line in the middle of the log is not skipped


def test_progress_line_shows_the_trial():
    line = progress_line(rec(3, acc=0.91234, flops=2.0e6, seconds=4.0, params=1000), 2, 10)
    assert line.startswith("[  2/10] trial   3 ok ") and "acc 0.9123" in line and "4.0s" in line
    assert "acc   -   " in progress_line(rec(4, "failed", error="oom"), 3, 10) and line.count("FLOPs") == 1


class _Search:
    """What write_results reads of a search: a real recipe, space and run folder, records set by hand."""

    def __init__(self, tmp_path, objectives: str, records: list[Record], space=None, extra: str = ""):
        from nas.recipe import loads_recipe
        from nas.runs import RunDir

        self.recipe = loads_recipe(f"name: demo\nspace: {{source: {space or tiny_space(tmp_path)}}}\n"
                                   f"strategy: random\nobjectives: {objectives}\nbudget: {{trials: 8}}\n{extra}",
                                   file=str(tmp_path / "recipe.yaml"))
        self.space = self.recipe.load_space()
        self.run = RunDir.create(tmp_path / "run", kind="search")
        self.records = {r.number: r for r in records}
        self.lines: list[str] = []
        self.log = self.lines.append
        self.tables: list = []
        self.show = self.tables.append

    def seconds(self) -> float:
        return 3.0


def pick(first: str, second: str) -> dict[str, str]:
    return {"stages.0.layers.0": first, "stages.1.layers.0": second}


def stage_layers(text: str) -> list[list[str]]:
    """The picks an arch file lists, stage by stage (the file read back as an architecture)."""
    import nas.dsl as dsl

    arch = dsl.loads(text)
    assert not arch.choices()
    return [list(stage["layers"]) for stage in arch.doc["stages"]]


def trial_records() -> list[Record]:
    # (acc, flops): 2 is the most accurate fully trained trial (3 is stopped, more accurate: not the best);
    # for accuracy × FLOPs, 0 is dominated by 1 (as accurate, cheaper) and 7 by 5, so the front is 1, 2 and 5
    return [Record(0, "ok", pick("k3", "k3"), val_acc=0.5, flops=300.0),
            Record(1, "ok", pick("k5", "skip"), val_acc=0.5, flops=200.0),
            Record(2, "ok", pick("k5", "k3"), val_acc=0.875, flops=400.0, params=1500.0),
            Record(3, "stopped", pick("skip", "k5"), val_acc=0.95, flops=10.0),
            Record(4, "failed", pick("k3", "k5"), error="boom"),
            Record(5, "ok", pick("skip", "skip"), val_acc=0.25, flops=100.0),
            Record(6, "rejected", pick("k5", "k5"), flops=900.0),
            Record(7, "ok", pick("k3", "skip"), val_acc=0.125, flops=150.0, seconds=2.5)]


def test_write_results_single_objective_writes_the_best_trial(tmp_path):
    from nas.search.results import write_results

    search = _Search(tmp_path, "[accuracy]", trial_records())
    result = write_results(search)
    run = tmp_path / "run"
    best = (run / "best.arch.yaml").read_text(encoding="utf-8")
    assert best.startswith("# best: trial 2 of `nas search` demo (val acc 0.8750)")
    assert stage_layers(best) == [["k5"], ["k3"]]
    assert not (run / "pareto").exists()
    assert json.loads((run / "summary.json").read_text()) == result
    assert result["recipe"] == "demo" and result["trials"] == 8 and result["trained"] == 7
    assert result["counts"] == {"ok": 5, "stopped": 1, "failed": 1, "rejected": 1, "duplicate": 0}
    assert [b["number"] for b in result["best"]] == [2] and result["seconds"] == 3.0
    rows = list(csv.DictReader(io.StringIO((run / "trials.csv").read_text())))
    assert [(r["trial"], r["status"], r["stages.0.layers.0"], r["stages.1.layers.0"], r["seconds"]) for r in rows] == [
        ("0", "ok", "k3", "k3", "0.00"), ("1", "ok", "k5", "skip", "0.00"), ("2", "ok", "k5", "k3", "0.00"),
        ("3", "stopped", "skip", "k5", "0.00"), ("4", "failed", "k3", "k5", "0.00"),
        ("5", "ok", "skip", "skip", "0.00"), ("6", "rejected", "k5", "k5", "0.00"), ("7", "ok", "k3", "skip", "2.50")]
    assert search.lines[0] == f"7 trained (5 ok, 1 stopped, 1 failed), 1 rejected, 0 duplicate, 3s → {run}"
    assert search.lines[1:] == ["best picks: stages.0.layers.0=k5, stages.1.layers.0=k3"]
    shown = search.tables[0]
    assert shown.title == "demo: best trials" and shown.row_count == 5  # the top 5 of 2, 0, 1, 5, 7, stopped 3
    assert list(shown.columns[0].cells) == ["2", "0", "1", "5", "7"]
    assert list(shown.columns[2].cells) == ["0.8750", "0.5000", "0.5000", "0.2500", "0.1250"]
    assert list(shown.columns[3].cells) == ["1.50K", "-", "-", "-", "-"]  # params
    assert list(shown.columns[4].cells) == ["400", "300", "200", "100", "150"]  # FLOPs
    assert [c.justify for c in shown.columns] == ["right", "left", "right", "right", "right", "right", "right"]
    search.run.close()


def test_write_results_two_objectives_writes_exactly_the_pareto_front(tmp_path):
    from nas.search.results import write_results

    search = _Search(tmp_path, "[accuracy, flops]", trial_records())
    result = write_results(search)
    run = tmp_path / "run"
    assert not (run / "best.arch.yaml").exists()
    files = sorted(p.name for p in (run / "pareto").iterdir())
    assert files == ["0001.arch.yaml", "0002.arch.yaml", "0005.arch.yaml"]
    expected = {"0001": [["k5"], ["skip"]], "0002": [["k5"], ["k3"]], "0005": [["skip"], ["skip"]]}
    for stem, layers in expected.items():
        text = (run / "pareto" / f"{stem}.arch.yaml").read_text(encoding="utf-8")
        assert text.startswith(f"# Pareto-optimal: trial {int(stem)} of `nas search` demo")
        assert stage_layers(text) == layers
    assert [b["number"] for b in result["best"]] == [1, 2, 5]
    assert result["objectives"] == [{"accuracy": "max"}, {"flops": "min"}]
    assert search.lines[1:] == [f"3 Pareto-optimal architecture(s) in {run / 'pareto'}"]
    assert search.tables[0].title == "demo: Pareto front"
    search.run.close()


def test_write_results_exports_the_best_architecture_when_the_recipe_asks(tmp_path):
    from nas.search.results import write_results

    search = _Search(tmp_path, "[accuracy]", trial_records(), extra="export: {formats: [yaml]}\n")
    write_results(search)
    exported = sorted(p.name for p in (tmp_path / "run" / "export").iterdir() if not p.name.startswith("."))
    assert exported == ["arch.yaml"]
    assert stage_layers((tmp_path / "run" / "export" / "arch.yaml").read_text(encoding="utf-8")) == [["k5"], ["k3"]]
    search.run.close()


@pytest.mark.parametrize("layers", [4, 5])
def test_the_log_lists_at_most_eight_picks(tmp_path, layers):
    """8 choices are logged pick by pick; 9 would make a long line, so the log points to the files instead."""
    from nas.search.results import write_results

    space = tmp_path / "deeper.yaml"
    space.write_text(tiny_space(tmp_path).read_text(encoding="utf-8").replace("n: 1", f"n: {layers}", 1)
                     .replace("n: 1", "n: 4"), encoding="utf-8")
    names = [f"stages.0.layers.{i}" for i in range(layers)] + [f"stages.1.layers.{i}" for i in range(4)]
    search = _Search(tmp_path, "[accuracy]", [Record(0, "ok", dict.fromkeys(names, "k3"), val_acc=0.5)], space=space)
    assert list(search.space.choices()) == names
    write_results(search)
    if layers == 4:
        assert search.lines[1] == "best picks: " + ", ".join(f"{n}=k3" for n in names)
    else:
        assert search.lines[1] == "best: trial 0 (its picks are in trials.csv), in best.arch.yaml"
    search.run.close()
