"""The numbers of a report, once: the top-k rows, the trial counts and the timing, then drawn as a rich table
(terminal) or a Markdown table (report.md) from the same rows."""
from __future__ import annotations

from dataclasses import dataclass

from nas.report import human
from nas.reporting.load import Run, counts
from nas.search.results import Record, pareto_front, ranked

PICKS_WIDTH = 70  # the terminal's picks column; report.md shows them whole


@dataclass
class Row:
    rank: int
    record: Record
    picks: str


def top_rows(run: Run, k: int = 10) -> list[Row]:
    """The best k trials (single objective) or the Pareto front (several), best first."""
    objectives = run.objectives()
    if len(objectives) == 1:
        chosen = ranked(run.records, objectives[0])
    else:
        first = objectives[0]
        sign = -1.0 if first.direction == "max" else 1.0
        chosen = sorted(pareto_front(run.records, objectives), key=lambda r: sign * r.metric(first.metric))
    return [Row(i + 1, r, short_picks(r.assignment)) for i, r in enumerate(chosen[:k])]


def short_picks(assignment: dict[str, str]) -> str:
    """Picks grouped by their choice's parent: `stages.1.layers.0..3` → `1:k3_e6,skip,k3_e1,k3_e1`."""
    groups: dict[str, list[str]] = {}
    for name, key in assignment.items():
        head, _, _ = name.rpartition(".")
        groups.setdefault(_short_group(head) if head else name, []).append(key)
    if list(groups) == list(assignment):  # one pick per group: name=value reads better
        return " ".join(f"{name}={key}" for name, key in assignment.items())
    return " ".join(f"{head}:{','.join(keys)}" for head, keys in groups.items())


def _short_group(head: str) -> str:
    parts = [p for p in head.split(".") if p not in ("stages", "layers", "cells", "nodes")]
    return ".".join(parts) or head


def timing_line(run: Run) -> str:
    """Counts by status, wall time and trials per hour."""
    if run.kind == "dnas":
        seconds = run.seconds or 0.0
        return f"{len(run.history)} epoch(s), {_duration(seconds)}"
    tally = counts(run.records)
    parts = [f"{n} {status}" for status, n in tally.items() if n]
    trained = tally["ok"] + tally["stopped"] + tally["failed"]
    seconds = run.seconds
    line = f"{len(run.records)} trial(s): " + ", ".join(parts)
    if seconds:
        line += f"; wall time {_duration(seconds)}, {trained / (seconds / 3600):.1f} trained trials per hour"
    return line


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def _columns(rows: list[Row]) -> list[tuple[str, callable]]:
    latency = any(r.record.latency is not None for r in rows)
    cols = [("rank", lambda r: str(r.rank)), ("trial", lambda r: str(r.record.number)),
            ("status", lambda r: r.record.status),
            ("val acc", lambda r: f"{r.record.val_acc:.4f}" if r.record.val_acc is not None else "-"),
            ("params", lambda r: _count(r.record.params)), ("FLOPs", lambda r: _count(r.record.flops))]
    if latency:
        cols.append(("latency ms", lambda r: f"{r.record.latency:.3g}" if r.record.latency is not None else "-"))
    cols += [("epochs", lambda r: str(r.record.epochs)), ("seconds", lambda r: f"{r.record.seconds:.1f}")]
    return cols


def _count(value: float | None) -> str:
    return human(value) if value is not None else "-"


def rich_table(run: Run, rows: list[Row]):
    from rich.markup import escape
    from rich.table import Table

    title = "Pareto front" if len(run.objectives()) > 1 else f"top {len(rows)}"
    table = Table(title=f"{escape(run.name)}: {title}", title_justify="left", caption=timing_line(run),
                  caption_justify="left")
    cols = _columns(rows)
    for name, _ in cols:
        table.add_column(name, justify="left" if name == "status" else "right")
    table.add_column("picks", overflow="ellipsis", no_wrap=True, max_width=PICKS_WIDTH)
    for row in rows:
        table.add_row(*(fn(row) for _, fn in cols), escape(row.picks))
    return table


def markdown_table(rows: list[Row]) -> str:
    cols = _columns(rows)
    lines = ["| " + " | ".join([name for name, _ in cols] + ["picks"]) + " |",
             "|" + "|".join(["---:"] * len(cols) + [":---"]) + "|"]
    for row in rows:
        picks = row.picks.replace("|", "\\|")
        lines.append("| " + " | ".join([fn(row) for _, fn in cols] + [f"`{picks}`"]) + " |")
    return "\n".join(lines)


def dnas_rows(run: Run) -> list[tuple[str, str]]:
    """The DNAS facts a table shows: per epoch the phase, accuracies and costs."""
    return [(str(h["epoch"]), h.get("phase", ""), _pct(h.get("train_acc")), _pct(h.get("theta_acc")),
             _pct(h.get("val_acc")), _count(h.get("expected_cost")), _count(h.get("derived_cost")))
            for h in run.history]


DNAS_COLUMNS = ("epoch", "phase", "train acc", "θ acc", "val acc", "E[cost]", "derived cost")


def _pct(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def dnas_rich_table(run: Run):
    from rich.markup import escape
    from rich.table import Table

    metric = run.history[-1].get("cost_metric", "cost")
    table = Table(title=f"{run.name}: DNAS epochs (cost = {metric})", title_justify="left",
                  caption=timing_line(run), caption_justify="left")
    for name in DNAS_COLUMNS:
        table.add_column(escape(name), justify="left" if name == "phase" else "right")
    for row in dnas_rows(run):
        table.add_row(*row)
    return table


def dnas_markdown(run: Run) -> str:
    lines = ["| " + " | ".join(DNAS_COLUMNS) + " |", "|" + "|".join(["---:"] * len(DNAS_COLUMNS)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in dnas_rows(run)]
    return "\n".join(lines)

