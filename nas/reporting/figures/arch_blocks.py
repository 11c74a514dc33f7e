"""A block network drawn as in FBNet's Figure 4: one box per layer in order, coloured by kernel size, as tall
as its expansion ratio, skip layers hatched and empty; stage boundaries as dashed lines, strided layers
marked ↓s, each stage's output channels and feature-map size written under it."""
from __future__ import annotations

from nas.reporting.figures.common import new_figure

KERNEL_COLOURS = {1: "#9ecae9", 3: "#4c78a8", 5: "#f58518", 7: "#54a24b", 9: "#b279a2", 11: "#e45756"}
OTHER_COLOUR = "#bab0ac"
BOX_WIDTH = 0.8
MAX_INCHES = 30.0


def _groups(plan) -> list[tuple[str, list]]:
    out = [("stem", plan.stem)] if plan.stem else []
    out += [(f"stage {i}", units) for i, units in enumerate(plan.stages) if units]
    return out + ([("head", plan.head)] if plan.head else [])


def _height(spec: dict, max_e: float) -> float:
    if spec["op"] == "skip":
        return 0.3
    e = spec.get("e")
    if isinstance(e, (int, float)) and max_e > 0:
        return 0.3 + 0.7 * e / max_e
    return 0.55


def _label(spec: dict) -> str:
    op = spec["op"]
    if op == "skip":
        return "skip"
    parts = [op if op != "ir" else ""]
    if spec.get("k") is not None:
        parts.append(f"k{spec['k']}")
    if spec.get("e") is not None:
        parts.append(f"e{spec['e']:g}")
    if (spec.get("groups") or 1) > 1:
        parts.append(f"g{spec['groups']}")
    if spec.get("se"):
        parts.append("se")
    return " ".join(p for p in parts if p)


def _colour(spec: dict) -> str:
    k = spec.get("k")
    return KERNEL_COLOURS.get(k, "#9467bd") if isinstance(k, int) else OTHER_COLOUR


def _strided(unit) -> int:
    if len(unit.in_shape) != 3 or len(unit.out_shape) != 3:
        return 1
    h_in, h_out = unit.in_shape[1], unit.out_shape[1]
    return round(h_in / h_out) if h_out and h_in > h_out else 1


def _out(unit) -> str:
    shape = unit.out_shape
    return f"{shape[0]}\n{shape[1]}×{shape[2]}" if len(shape) == 3 else str(shape[0])


def blocks_figure(arch):
    from matplotlib.patches import Patch, Rectangle

    plan = arch.plan()
    groups = _groups(plan)
    units = [u for _, us in groups for u in us]
    max_e = max([u.spec["e"] for u in units if isinstance(u.spec.get("e"), (int, float))] or [0])
    step = min(0.42, (MAX_INCHES - 1.5) / max(1, len(units)))
    fig = new_figure(1.5 + step * len(units) + 0.3 * len(groups), 3.6)
    ax = fig.subplots()
    x = 0.0
    kernels = set()
    for g, (name, members) in enumerate(groups):
        start = x
        for unit in members:
            spec, h = unit.spec, _height(unit.spec, max_e)
            skip = spec["op"] == "skip"
            ax.add_patch(Rectangle((x, 0), BOX_WIDTH, h, facecolor="white" if skip else _colour(spec),
                                   edgecolor="black", lw=0.6, hatch="///" if skip else None))
            if isinstance(spec.get("k"), int):
                kernels.add(spec["k"])
            ax.text(x + BOX_WIDTH / 2, h + 0.04, _label(spec), rotation=90, ha="center", va="bottom", fontsize=6)
            stride = _strided(unit) if name != "head" else 1  # the head's global pooling is not a stride
            if stride > 1:
                ax.text(x + BOX_WIDTH / 2, -0.06, f"↓{stride}", ha="center", va="top", fontsize=7, color="#d62728")
            x += 1
        ax.text((start + x - 1 + BOX_WIDTH) / 2, -0.3, _out(members[-1]),
                ha="center", va="top", fontsize=7)
        ax.text((start + x - 1 + BOX_WIDTH) / 2, 1.85, name, ha="center", va="bottom", fontsize=7, color="#555555")
        if g < len(groups) - 1:
            ax.axvline(x - 0.1, color="#888888", ls="--", lw=0.7)
        x += 0.2
    ax.text(-0.4, -0.3, "out\nch, size", ha="right", va="top", fontsize=7, color="#555555")
    ax.set_xlim(-0.5, x)
    ax.set_ylim(-0.85, 2.05)
    ax.axis("off")
    handles = [Patch(facecolor=KERNEL_COLOURS.get(k, "#9467bd"), edgecolor="black", label=f"kernel {k}×{k}")
               for k in sorted(kernels)]
    handles += [Patch(facecolor=OTHER_COLOUR, edgecolor="black", label="no kernel (pool, fc, …)"),
                Patch(facecolor="white", edgecolor="black", hatch="///", label="skip")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False,
              title="box height: expansion" if max_e else None, title_fontsize=7)
    c, size, _ = plan.input_shape
    ax.set_title(f"{arch.name}: {len(units)} layers, input {c}×{size}×{size}, {plan.classes} classes", fontsize=9)
    return fig
