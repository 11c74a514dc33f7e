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
