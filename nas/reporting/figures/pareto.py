"""Accuracy against a cost (FLOPs, params or latency): the Pareto front of the fully trained trials
highlighted and labelled with trial numbers, dominated trials faded, and zoo architectures, counted at the
run's input size, as reference lines on the cost axis (their accuracy on this data is not known)."""
from __future__ import annotations

from dataclasses import dataclass

from nas.recipe import Objective
from nas.reporting.figures.common import METRIC_LABELS, count_formatter, new_figure
from nas.reporting.load import Run
from nas.search.results import pareto_front

MAX_LABELS = 12


@dataclass
class Reference:
    name: str
    flops: float
    params: float
    note: str  # how it was counted, e.g. "width ×0.25, 32×32"

    def metric(self, name: str) -> float | None:
        return getattr(self, name, None)


def cost_metrics(run: Run) -> list[str]:
    """The costs that every fully trained trial has a value for."""
    ok = [r for r in run.records if r.status == "ok"]
    return [m for m in ("flops", "params", "latency") if ok and all(r.metric(m) is not None for r in ok)]


def pareto_figure(run: Run, metric: str, references: list[Reference] = ()):
    objectives = [Objective("accuracy", "max"), Objective(metric, "min")]
    trained = [r for r in run.records if r.status in ("ok", "stopped") and r.val_acc is not None
               and r.metric(metric) is not None]
    front = sorted(pareto_front(run.records, objectives), key=lambda r: r.metric(metric))
    on_front = {r.number for r in front}
    fig = new_figure(7.5, 5)
    ax = fig.subplots()
    faded = [r for r in trained if r.number not in on_front and r.status == "ok"]
    stopped = [r for r in trained if r.status == "stopped"]
    if faded:
        ax.scatter([r.metric(metric) for r in faded], [r.val_acc for r in faded], s=20, color="#9aa7b5",
                   alpha=0.55, label=f"dominated ({len(faded)})")
    low, high = _accuracy_range([r for r in trained if r.status == "ok"] or trained)
    if sum(r.val_acc < low for r in stopped) > 2:  # more than a stray outlier or two: show them all
        low, high = _accuracy_range(trained)
    if stopped:
        below = sum(r.val_acc < low for r in stopped)
        ax.scatter([r.metric(metric) for r in stopped], [r.val_acc for r in stopped], s=22, marker="x",
                   color="#ff7f0e", alpha=0.6, clip_on=True,
                   label=f"stopped early ({len(stopped)}" + (f", {below} below the axis)" if below else ")"))
    if front:
        xs, ys = [r.metric(metric) for r in front], [r.val_acc for r in front]
        ax.step(xs, ys, where="post", color="#1f77b4", lw=1.4, alpha=0.8)
        ax.scatter(xs, ys, s=46, color="#1f77b4", edgecolor="black", zorder=4, label=f"Pareto front ({len(front)})")
        for i, r in enumerate(_labelled(front)):  # alternate above and below: neighbours do not collide
            ax.annotate(f"#{r.number}", (r.metric(metric), r.val_acc), xytext=(5, 6 if i % 2 == 0 else -13),
                        textcoords="offset points", fontsize=8)
    for ref in references:
        value = ref.metric(metric)
        if value is None:
            continue
        ax.axvline(value, color="#2ca02c", ls="--", lw=1)
        ax.annotate(f"{ref.name}\n({ref.note})", (value, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -4), textcoords="offset points", fontsize=7, color="#2ca02c", va="top")
    values = [r.metric(metric) for r in trained] + [ref.metric(metric) for ref in references
                                                      if ref.metric(metric) is not None]
    if values and min(values) > 0 and max(values) / min(values) > 30:
        ax.set_xscale("log")
    elif metric != "latency":
        ax.xaxis.set_major_formatter(count_formatter())
    ax.set_xlabel(METRIC_LABELS.get(metric, metric) + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel(METRIC_LABELS["accuracy"])
    ax.set_ylim(low, high)  # the fully trained trials' range: a stopped outlier does not flatten the front
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    status = " (still running)" if run.running else ""
    ax.set_title(f"{run.name}: accuracy × {metric.replace('flops', 'FLOPs')}{status}")
    return fig


def _accuracy_range(records: list) -> tuple[float, float]:
    accs = [r.val_acc for r in records] or [0.0, 1.0]
    pad = max(0.01, 0.12 * (max(accs) - min(accs)))
    return max(0.0, min(accs) - pad), min(1.0, max(accs) + pad)


def _labelled(front: list) -> list:
    """Every front point when few; else an even spread including both ends."""
    if len(front) <= MAX_LABELS:
        return front
    step = (len(front) - 1) / (MAX_LABELS - 1)
    return [front[round(i * step)] for i in range(MAX_LABELS)]
