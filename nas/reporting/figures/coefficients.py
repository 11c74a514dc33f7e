"""The α/β/γ search (EfficientNet step 1): accuracy of each tried triple on the (β, γ) plane; α follows from
α·β²·γ² ≈ 2 and is written beside each point; the admissible triples not tried are hollow."""
from __future__ import annotations

import re

from nas.reporting.figures.common import new_figure
from nas.reporting.load import Run
from nas.search.results import ranked

_KEY = re.compile(r"^a([0-9.e+-]+)_b([0-9.e+-]+)_g([0-9.e+-]+)$")


def triple_of(key: str) -> tuple[float, float, float] | None:
    """`a1.2_b1.1_g1.15` (nas.search.coefficients.triple_key) → (1.2, 1.1, 1.15)."""
    match = _KEY.match(key)
    return tuple(float(g) for g in match.groups()) if match else None


def admissible(run: Run) -> list[tuple[float, float, float]]:
    from nas.scaling import coefficient_grid

    c = run.recipe.space.coefficients if run.recipe is not None else None
    return [tuple(t) for t in coefficient_grid(c["step"], c["tolerance"], c["maximum"])] if c else []


def coefficients_figure(run: Run):
    tried = {}
    for r in ranked(run.records, run.objectives()[0]):
        triple = triple_of(r.assignment.get("coefficients", ""))
        if triple is not None and triple not in tried:
            tried[triple] = r.val_acc
    fig = new_figure(7, 5)
    ax = fig.subplots()
    rest = [t for t in admissible(run) if t not in tried]
    if rest:
        ax.scatter([t[1] for t in rest], [t[2] for t in rest], s=60, facecolor="none", edgecolor="#999999",
                   label=f"admissible, not tried ({len(rest)})")
    if tried:
        places: dict[tuple[float, float], list[tuple[float, float]]] = {}  # several α share a (β, γ)
        for (alpha, beta, gamma), acc in tried.items():
            places.setdefault((beta, gamma), []).append((alpha, acc))
        points = ax.scatter([p[0] for p in places], [p[1] for p in places],
                            c=[max(a for _, a in v) for v in places.values()], s=90, cmap="viridis",
                            edgecolor="black", zorder=3)
        fig.colorbar(points, ax=ax, label="validation accuracy (best α at the point)")
        for (beta, gamma), found in places.items():
            text = "\n".join(f"α={alpha:g}: {acc:.3f}" for alpha, acc in sorted(found))
            ax.annotate(text, (beta, gamma), xytext=(7, 0), textcoords="offset points", fontsize=6.5, va="center")
        best = next(iter(tried))  # ranked: best first
        ax.scatter([best[1]], [best[2]], s=300, marker="*", color="#d62728", zorder=4,
                   label=f"best (α, β, γ) = ({best[0]:g}, {best[1]:g}, {best[2]:g})")
        ax.scatter([], [], s=90, color="#888888", edgecolor="black", label=f"tried ({len(tried)} triples)")
    ax.set_xlabel("β (width multiplier per φ)")
    ax.set_ylabel("γ (resolution multiplier per φ)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{run.name}: accuracy over the (α, β, γ) grid, α·β²·γ² ≈ 2")
    return fig
