"""Search progress: every trial as a dot, the best-so-far objective as a step line, against the trial number
and against the search's wall time (Optuna's optimization-history plot, plus the time axis)."""
from __future__ import annotations

from nas.reporting.figures.common import METRIC_LABELS, STATUS_COLOURS, new_figure
from nas.reporting.load import Run


def best_so_far(points: list[tuple[float, float]], maximize: bool) -> list[tuple[float, float]]:
    """(x, y) points in x order → (x, best y up to x)."""
    out, best = [], None
    for x, y in sorted(points):
        best = y if best is None else (max(best, y) if maximize else min(best, y))
        out.append((x, best))
    return out


def progress_figure(run: Run):
    objective = run.objectives()[0]
    maximize = objective.direction == "max"
    label = METRIC_LABELS.get(objective.metric, objective.metric)
    timed = bool(run.finished_at)
    fig = new_figure(11 if timed else 6, 4.2)
    axes = fig.subplots(1, 2 if timed else 1, sharey=True, squeeze=False)[0]
    views = [("trial number", lambda r: r.number)]
    if timed:
        views.append(("wall time of the search (min)", lambda r: run.finished_at.get(r.number, 0.0) / 60))
    usable = [r for r in run.records if r.metric(objective.metric) is not None]
    for ax, (xlabel, x_of) in zip(axes, views):
        for status, colour in STATUS_COLOURS.items():
            pts = [(x_of(r), r.metric(objective.metric)) for r in usable if r.status == status]
            if pts:
                ax.scatter(*zip(*pts), s=22, color=colour, alpha=0.75, label=f"{status} ({len(pts)})", zorder=3)
        done = [(x_of(r), r.metric(objective.metric)) for r in usable if r.status == "ok"]
        if done:
            xs, ys = zip(*best_so_far(done, maximize))
            ax.step(xs, ys, where="post", color="black", lw=1.6, label=f"best so far ({'max' if maximize else 'min'})",
                    zorder=4)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(label)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8)  # never over a point
    axes[0].xaxis.get_major_locator().set_params(integer=True)
    status = " (still running)" if run.running else ""
    fig.suptitle(f"{run.name}: search progress, {len(run.records)} trials{status}")
    return fig
