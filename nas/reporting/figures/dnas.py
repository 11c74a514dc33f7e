"""DNAS runs (history.json): each choice's option probabilities (softmax θ) over the epochs as small
heatmaps, the expected and the derived cost over the epochs, and the accuracy curves."""
from __future__ import annotations

import math

import numpy as np

from nas.reporting.figures.common import METRIC_LABELS, count_formatter, new_figure
from nas.reporting.load import Run

COLUMNS = 6


def softmax(logits: dict[str, float]) -> dict[str, float]:
    top = max(logits.values())
    exp = {k: math.exp(v - top) for k, v in logits.items()}
    total = sum(exp.values())
    return {k: v / total for k, v in exp.items()}


def theta_probabilities(run: Run) -> dict[str, tuple[list[str], np.ndarray]]:
    """choice → (options, probabilities as an options × epochs array)."""
    out = {}
    for name, first in run.history[0]["theta"].items():
        options = list(first)
        grid = np.array([[softmax(h["theta"][name])[o] for h in run.history] for o in options])
        out[name] = (options, grid)
    return out


def theta_figure(run: Run):
    probs = theta_probabilities(run)
    epochs = [h["epoch"] for h in run.history]
    n = len(probs)
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    most = max(len(o) for o, _ in probs.values())
    fig = new_figure(2.3 * cols + 1.2, (0.16 * most + 0.9) * rows + 0.8)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    image = None
    derived = run.history[-1].get("derived", {})
    # early on θ moves little from uniform: the colours span the range the probabilities cover
    low = min(float(grid.min()) for _, grid in probs.values())
    top = max(float(grid.max()) for _, grid in probs.values())
    if top - low < 1e-6:
        low, top = 0.0, 1.0
    for ax, (name, (options, grid)) in zip(axes, probs.items()):
        image = ax.imshow(grid, aspect="auto", cmap="magma", vmin=low, vmax=top, interpolation="nearest",
                          extent=(epochs[0] - 0.5, epochs[-1] + 0.5, len(options) - 0.5, -0.5))
        ax.set_xticks(_ticks(epochs, 6))
        labels = [f"{o} ◀" if derived.get(name) == o else o for o in options]
        ax.set_yticks(range(len(options)), labels, fontsize=6)
        ax.set_title(name, fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax in axes[(rows - 1) * cols:n]:
        ax.set_xlabel("epoch", fontsize=7)
    fig.colorbar(image, ax=axes[:n].tolist(), shrink=0.6, label="softmax(θ): option probability")
    fig.suptitle(f"{run.name}: option probabilities over epochs (◀ = derived pick after the last epoch)")
    return fig


def cost_figure(run: Run):
    epochs = [h["epoch"] for h in run.history]
    metric = run.history[-1].get("cost_metric", "flops")
    fig = new_figure(6.5, 4)
    ax = fig.subplots()
    for key, label, style in (("expected_cost", "expected cost E[cost] of θ", "-o"),
                              ("derived_cost", "cost of the derived (argmax) architecture", "--s")):
        values = [h.get(key) for h in run.history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], style, ms=4, label=label)
    _shade_warmup(ax, run)
    ax.set_xlabel("epoch")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if metric != "latency":
        ax.yaxis.set_major_formatter(count_formatter())
    ax.set_xticks(_ticks(epochs, 10))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{run.name}: cost over epochs")
    return fig


def has_cost(run: Run) -> bool:
    return any(h.get("expected_cost") is not None or h.get("derived_cost") is not None for h in run.history)


def accuracy_figure(run: Run):
    epochs = [h["epoch"] for h in run.history]
    fig = new_figure(6.5, 4)
    ax = fig.subplots()
    for key, label in (("train_acc", "train (weights' part, sampled paths)"),
                       ("theta_acc", "train (θ's part)"), ("val_acc", "validation (derived architecture)")):
        values = [h.get(key) for h in run.history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], "-o", ms=4, label=label)
    _shade_warmup(ax, run)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(_ticks(epochs, 10))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{run.name}: accuracy over epochs")
    return fig


def _ticks(epochs: list[int], most: int) -> list[int]:
    """Whole epochs only, at most about `most` of them."""
    return epochs[::max(1, -(-len(epochs) // most))]


def _shade_warmup(ax, run: Run) -> None:
    warm = [h["epoch"] for h in run.history if h.get("phase") == "warmup"]
    if warm:
        ax.axvspan(min(warm) - 0.5, max(warm) + 0.5, color="#dddddd", alpha=0.6, lw=0,
                   label="warm-up (weights only)")
