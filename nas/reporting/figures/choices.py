"""Per-choice statistics of a trial search: how often each option was picked by the best 20% of the trials
(by the first objective) and by the rest, side by side; a choice whose two rows differ mattered."""
from __future__ import annotations

import numpy as np

from nas.reporting.figures.common import new_figure
from nas.reporting.load import Run
from nas.search.results import ranked

TOP_SHARE = 0.2
MAX_ROWS = 40


def split_best(run: Run) -> tuple[list, list]:
    """The best 20% (at least one) of the trained trials and the rest."""
    order = ranked(run.records, run.objectives()[0])
    cut = max(1, round(TOP_SHARE * len(order)))
    return order[:cut], order[cut:]


def frequencies(records: list, name: str, options: list[str]) -> np.ndarray:
    """Share of the records where choice `name` is active that picked each option (NaN when none is)."""
    picks = [r.assignment[name] for r in records if name in r.assignment]
    if not picks:
        return np.full(len(options), np.nan)
    return np.array([picks.count(o) / len(picks) for o in options])


def option_lists(run: Run) -> dict[str, list[str]]:
    """Each choice's options in the space's order (as picked, where the recipe's space no longer loads)."""
    space = None
    if run.recipe is not None:
        try:
            space = run.recipe.load_space()
        except Exception:  # noqa: BLE001 - a moved space file: fall back to what the trials picked
            space = None
    out = {}
    for name in run.choice_names:
        if space is not None and name in space.choices():
            out[name] = list(space.choices()[name].keys)
        else:
            out[name] = sorted({r.assignment[name] for r in run.records if name in r.assignment})
    return out


def column_label(choice: str, option: str) -> str:
    """Options of the same kind of choice share a column: `…layers.0.k` → `k=3`, `…nodes.1.op0` → `op=…`,
    `…layers.0` → `k3_e6`; so k=3 and e=3 never do."""
    kind = choice.rpartition(".")[2].rstrip("0123456789")
    return f"{kind}={option}" if kind else option


def choices_figure(run: Run):
    best, rest = split_best(run)
    options = option_lists(run)
    columns = list(dict.fromkeys(column_label(n, o) for n, opts in options.items() for o in opts))
    kinds = list(dict.fromkeys(c.partition("=")[0] if "=" in c else "" for c in columns))
    columns.sort(key=lambda c: kinds.index(c.partition("=")[0] if "=" in c else ""))  # ops, then inputs, …
    rows = []
    for name, opts in options.items():
        top, other = frequencies(best, name, opts), frequencies(rest, name, opts)
        gap = np.nansum(np.abs(top - other)) / 2 if rest else 0.0
        rows.append((name, [column_label(name, o) for o in opts], top, other, gap))
    shown = rows if len(rows) <= MAX_ROWS else sorted(sorted(rows, key=lambda r: -r[4])[:MAX_ROWS],
                                                     key=lambda r: run.choice_names.index(r[0]))
    grids = []
    for part in (2, 3):
        grid = np.full((len(shown), len(columns)), np.nan)
        for i, row in enumerate(shown):
            for j, option in enumerate(row[1]):
                grid[i, columns.index(option)] = row[part][j]
        grids.append(grid)
    height = 1.6 + 0.26 * len(shown)
    width = 3.2 + 2 * max(2.5, 0.42 * len(columns))
    fig = new_figure(width, height)
    axes = fig.subplots(1, 2, sharey=True)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee")
    titles = (f"best {TOP_SHARE:.0%}: {len(best)} trial(s)", f"the rest: {len(rest)} trial(s)")
    image = None
    for ax, grid, title in zip(axes, grids, titles):
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto",
                          interpolation="nearest")
        ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=10)
        if len(shown) * len(columns) <= 300:
            for (i, j), value in np.ndenumerate(grid):
                if np.isfinite(value) and value > 0:
                    ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=6,
                            color="white" if value < 0.6 else "black")
    axes[0].set_yticks(range(len(shown)), [r[0] for r in shown], fontsize=7)
    fig.colorbar(image, ax=axes, shrink=min(0.8, 6 / height), label="share of trials picking the option")
    note = "" if len(shown) == len(rows) else f" ({len(shown)} of {len(rows)} choices: the largest differences)"
    fig.suptitle(f"{run.name}: option picks of the best trials vs the rest{note}")
    return fig
