"""Human-readable summaries of spaces, architectures and costs (rich tables). Library code: builds tables,
never prints; the CLI decides where they go."""
from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def console(stderr: bool = False) -> Console:
    """A rich console that stays wide (tables unwrapped) when output goes to a file or pipe."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 160)

from nas.dsl.nodes import Choice, Space
from nas.dsl.ops import shown_params


def human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _describe(value) -> str:
    if isinstance(value, Choice):
        label = f"${value.set_name}" if value.set_name else "choice"
        return f"{label} ({len(value)})"
    if isinstance(value, dict):
        return " ".join([str(value.get("op", "?"))] + [f"{k}={v}" for k, v in value.items()
                                                      if k != "op" and not isinstance(v, (dict, list))])
    return str(value)


def space_summary(space: Space) -> Table:
    """Stage rows (block networks) or cells and body (cell networks), with where the choices are."""
    doc = space.doc
    if space.is_cell:
        table = Table(title=f"{escape(space.name)}: cells", title_justify="left")
        for col in ("cell", "nodes", "inputs/node", "ops", "reduce", "concat"):
            table.add_column(col)
        for name, cell in doc["cells"].items():
            first = cell["nodes"][0]
            op = first.get("op0")
            table.add_row(name, str(len(cell["nodes"])), str(sum(1 for k in first if k.startswith("op"))),
                          _describe(op), str(cell["reduce"]), str(cell["concat"]))
        body = doc["body"]
        table.caption = f"body: {list(body['pattern'])}, N={body.get('N')}, F={body.get('F')}"
        return table
    table = Table(title=f"{escape(space.name)}: stages", title_justify="left")
    for col in ("stage", "c", "n", "s", "block"):
        table.add_column(col)
    for i, row in enumerate(doc["stages"]):
        n = row.get("n", len(row.get("layers", [])) or 1)
        if "layers" in row:
            kinds = {_describe(layer) for layer in row["layers"]}
            block = ", ".join(sorted(kinds)) + (" per layer" if any(isinstance(x, Choice) for x in row["layers"])
                                                else "")
        else:
            block = _describe(row.get("block") or {k: v for k, v in row.items() if k not in ("c", "n", "s")})
        table.add_row(str(i), _describe(row["c"]), _describe(n), str(row["s"]), block)
    return table


def unit_table(cost) -> Table:
    """Per-op table of an ArchCost counted with per_unit=True."""
    table = Table(title=f"{escape(cost.name)} @ {cost.input_shape[1]}×{cost.input_shape[2]}", title_justify="left")
    for col, justify in (("module", "left"), ("op", "left"), ("settings", "left"), ("out", "right"),
                         ("params", "right"), ("FLOPs", "right")):
        table.add_column(col, justify=justify, no_wrap=col in ("module", "out"))
    for unit, c in cost.units:
        settings = " ".join(f"{k}={v}" for k, v in shown_params(unit.spec))
        out = "×".join(map(str, unit.out_shape))
        table.add_row(unit.path, unit.op, settings, out, f"{c.params:,}", human(c.flops))
    table.add_section()
    table.add_row("total", "", "", "", f"{cost.total.params:,}", human(cost.total.flops))
    return table
