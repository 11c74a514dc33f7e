"""`nas report RUN_DIR`: the table of a search run in the terminal, and a report folder (report.md + PNGs)."""
from __future__ import annotations

from pathlib import Path

from nas.cli._args import integer, positive_int


def _report(args) -> int:
    from nas.report import console as report_console
    from nas.reporting.load import load_run
    from nas.reporting.tables import dnas_rich_table, rich_table, top_rows

    run = load_run(args.run_dir)
    references = []
    if args.reference:
        from nas.reporting.references import parse_names, reference_points

        references = reference_points(run, parse_names(args.reference))
    console = report_console()
    rows = top_rows(run, args.top) if run.kind != "dnas" else []
    console.print(dnas_rich_table(run) if run.kind == "dnas" else rich_table(run, rows))
    if run.running:
        console.print(f"{run.name} is still running: the table shows what has finished so far"
                      + ("" if args.output else "; no report folder is written until it ends (or give -o)"))
        if not args.output:
            return 0
    elif run.state == "interrupted":
        console.print(f"{run.name} was interrupted; resume it with: nas search --resume {run.path}")
    from nas.reporting.build import write_report

    out = Path(args.output) if args.output else run.path / "report"
    written = write_report(run, out, rows, references, dpi=args.dpi)
    console.print(f"report: {out / 'report.md'} ({len(written) - 1} figure(s))")
    return 0


def register(sub) -> None:
    p = sub.add_parser("report", help="tables and figures of a search run (report.md + PNGs)",
                       description="Print a search run's best trials (or DNAS epochs), counts and timing, and "
                                   "write a report folder: report.md with the table, every figure and the "
                                   "recipe. Works on a run in progress (it says so and shows what finished).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a folder that `nas search` wrote")
    p.add_argument("-o", "--output", metavar="OUT_DIR", default=None, help="report folder (default RUN_DIR/report)")
    p.add_argument("--top", type=positive_int("--top"), default=10, metavar="K", help="rows of the table (default 10)")
    p.add_argument("--reference", metavar="NAMES", default=None,
                   help="zoo architectures to mark on the Pareto figures, counted at the run's scale, "
                        "e.g. mobilenetv2,fbnet_c")
    p.add_argument("--dpi", type=integer("--dpi", 20, 600, "a resolution", "from 20 to 600 dots per inch"), default=120, metavar="N", help="figure resolution (default 120)")
    p.set_defaults(func=_report)
