"""A cell network's cells drawn as graphs, as in the NASNet and DARTS papers: the inputs h0 (the cell before
the previous one) and h1 (the previous cell) on the left, the nodes in columns by depth, the op on every edge,
and the concatenation of the cell's output states on the right. The layout is computed here (no graphviz)."""
from __future__ import annotations

from nas.reporting.figures.common import new_figure

EDGE_COLOURS = (("sep", "#1f77b4"), ("dil", "#9467bd"), ("pool", "#2ca02c"), ("skip", "#7f7f7f"),
                ("identity", "#7f7f7f"), ("none", "#cccccc"), ("zero", "#cccccc"), ("conv", "#d62728"))


COLUMN_GAP = 1.6
ROW_GAP = 2.0  # between states in a column
OP_GAP = 0.8  # between the op boxes that feed one node


def _op_name(op) -> str:
    if isinstance(op, dict):
        extra = "".join(f" k{op['k']}" if key == "k" else "" for key in op)
        return f"{op.get('op', '?')}{extra}"
    return str(op)


def cell_edges(cell_doc: dict) -> list[tuple[str, str, str]]:
    """(source state, node name, op) for every input of every node; nodes are n0, n1, … in order."""
    edges = []
    for i, node in enumerate(cell_doc["nodes"]):
        j = 0
        while f"op{j}" in node:
            edges.append((str(node.get(f"in{j}")), f"n{i}", _op_name(node[f"op{j}"])))
            j += 1
    return edges


def layout(nodes: int, edges: list[tuple[str, str, str]]) -> dict:
    """Places of the states and of one box per op, as the NASNet paper draws cells: h0 and h1 in the first
    column; each node in the column after its deepest input, its op boxes in the column just before it; the
    concat last. Rows are centred in each column. Returns {state: (x, y)} and {edge index: (x, y)}."""
    depth = {"h0": 0, "h1": 0}
    for i in range(nodes):
        sources = [s for s, t, _ in edges if t == f"n{i}"]
        depth[f"n{i}"] = 1 + max((depth.get(s, 0) for s in sources), default=0)
    depth["concat"] = max(depth.values()) + 1
    columns: dict[int, list[str]] = {}
    for name, d in depth.items():
        columns.setdefault(d, []).append(name)
    states, ops = {}, {}
    for d, names in columns.items():
        for row, name in enumerate(names):
            states[name] = (2 * d * COLUMN_GAP, ((len(names) - 1) / 2 - row) * ROW_GAP)
    for i in range(nodes):
        into = [k for k, (_, t, _) in enumerate(edges) if t == f"n{i}"]
        x, y = states[f"n{i}"]
        for j, k in enumerate(into):
            ops[k] = (x - COLUMN_GAP, y + ((len(into) - 1) / 2 - j) * OP_GAP)
    return states, ops


def _edge_colour(op: str) -> str:
    return next((colour for key, colour in EDGE_COLOURS if key in op), "#ff7f0e")


def _arrow(ax, a, b, colour: str, rad: float = 0.0, **style) -> None:
    from matplotlib.patches import FancyArrowPatch

    ax.add_patch(FancyArrowPatch(a, b, connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=9,
                                 color=colour, shrinkA=12, shrinkB=12, zorder=1, clip_on=False, **style))


def draw_cell(ax, title: str, cell_doc: dict, concat: list[str]) -> None:
    edges = cell_edges(cell_doc)
    states, ops = layout(len(cell_doc["nodes"]), edges)
    for k, (source, target, op) in enumerate(edges):
        if source not in states:
            continue
        colour = _edge_colour(op)
        (x0, y0), (x1, y1) = states[source], ops[k]
        long = x1 - x0 > 1.5 * COLUMN_GAP  # bows over the columns it passes
        _arrow(ax, (x0, y0), (x1, y1), "#666666", rad=(0.12 if y1 >= y0 else -0.12) if long else 0.0, lw=0.9)
        _arrow(ax, (x1, y1), states[target], colour, lw=1.2)
        ax.text(x1, y1, op, fontsize=7, ha="center", va="center", zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec=colour, lw=1.1))
    for state in concat:
        if state in states:  # an output two or more columns back bows around the nodes in between
            (x0, y0), (x1, y1) = states[state], states["concat"]
            rad = 0.0 if x1 - x0 <= 2 * COLUMN_GAP else (-0.2 if y0 >= y1 else 0.2)
            _arrow(ax, (x0, y0), (x1, y1), "#444444", rad=rad, lw=0.8, ls="--")
    for name, (x, y) in states.items():
        unused = name.startswith("n") and name not in concat  # read by later nodes only
        face = {"h0": "#fde0c5", "h1": "#fde0c5", "concat": "#d9ead3"}.get(name, "#c8c8c8" if unused else "#c6dbef")
        label = {"h0": "h0 (cell k−2)", "h1": "h1 (cell k−1)", "concat": "concat → cell k"}.get(name, name)
        ax.text(x, y, label, ha="center", va="center", fontsize=8, zorder=3,
                bbox=dict(boxstyle="circle,pad=0.3" if name.startswith("n") else "round,pad=0.4", fc=face,
                          ec="black", lw=0.8))
    points = list(states.values()) + list(ops.values())
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ax.set_xlim(min(xs) - 0.9 * COLUMN_GAP, max(xs) + 0.9 * COLUMN_GAP)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)  # room for the arcs that bow around a column
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def _extent(cell_doc: dict) -> tuple[float, float]:
    states, ops = layout(len(cell_doc["nodes"]), cell_edges(cell_doc))
    points = list(states.values()) + list(ops.values())
    return (max(p[0] for p in points) - min(p[0] for p in points),
            max(p[1] for p in points) - min(p[1] for p in points))


def cells_figure(arch):
    plan = arch.plan()
    concat_of = {}
    for cell in plan.cells:
        concat_of.setdefault(cell.kind, list(cell.concat))
    kinds = [k for k in arch.doc["cells"] if k in concat_of] or list(arch.doc["cells"])
    extents = [_extent(arch.doc["cells"][k]) for k in kinds]
    heights = [0.45 * h + 1.2 for _, h in extents]
    fig = new_figure(max(7.0, 0.75 * max(w for w, _ in extents) + 2.5), sum(heights) + 0.5)
    axes = fig.subplots(len(kinds), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, kind in zip(axes, kinds):
        cell = arch.doc["cells"][kind]
        reduce = " (stride 2)" if cell.get("reduce") else ""
        draw_cell(ax, f"{kind} cell{reduce}: each node adds its inputs' ops" if cell.get("combine", "add") == "add"
                  else f"{kind} cell{reduce}: nodes combine by {cell['combine']}", cell, concat_of.get(kind, []))
    c, size, _ = plan.input_shape
    fig.suptitle(f"{arch.name}: cells (input {c}×{size}×{size}, {plan.classes} classes); "
                 "grey nodes feed later nodes only, dashed arrows go to the concat", fontsize=10)
    return fig
