"""`nas zoo`: the fixed architectures, their counts beside the published ones; `nas zoo show NAME`."""
from __future__ import annotations

from rich.table import Table


def _ratio(value) -> str:
    return f"{value:.3f}" if value is not None else "—"


def _list(args) -> int:
    from nas import zoo
    from nas.report import console, human

    out = console()
    table = Table(title="nas zoo: ours vs published (params, multiply-adds)", title_justify="left")
    for col in ("name", "input", "params", "FLOPs", "published params", "published FLOPs", "params ratio",
                "FLOPs ratio"):
        table.add_column(col, justify="left" if col == "name" else "right")
    names = zoo.architectures()
    with out.status("counting…") if not args.quiet else _nothing():
        for name in names:
            row = zoo.count(name)
            table.add_row(row.name, str(row.size), f"{row.params:,}", human(row.flops),
                          human(row.ref_params) if row.ref_params else "—",
                          human(row.ref_flops) if row.ref_flops else "—",
                          _ratio(row.params_ratio), _ratio(row.flops_ratio))
    out.print(table)
    return 0


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _show(args) -> int:
    from nas import zoo
    from nas.cost import count_arch
    from nas.report import console, unit_table

    arch = zoo.load(args.name)
    out = console()
    ref = arch.doc.get("reference") or {}
    out.print(f"{arch.name}: {arch.doc.get('description', '')} (published: {ref.get('source', 'n/a')})",
              markup=False, highlight=False)
    out.print(unit_table(count_arch(arch, per_unit=True)))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("zoo", help="list the architecture zoo with counts vs published figures",
                            description="List the fixed architectures (search_spaces/zoo/ and fixed top-level "
                                        "files) with params and FLOPs beside the published numbers; "
                                        "`nas zoo show NAME` prints one's layer table.")
    parser.set_defaults(func=_list)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="the layer table of one zoo architecture")
    show.add_argument("name", metavar="NAME")
    show.set_defaults(func=_show)
