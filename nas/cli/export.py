"""`nas export`: ship an architecture as standalone PyTorch source, weights, TorchScript or ONNX."""
from __future__ import annotations

from nas.cli._args import positive_int


def _export(args) -> int:
    from nas.export import export, parse_formats, resolve_source, safe_text
    from nas.report import console

    formats = parse_formats(args.format)
    arch, run_weights = resolve_source(args.source)
    if args.input_size:
        arch = arch.with_input(size=args.input_size)
    weights = args.weights or run_weights
    out = console()
    written = export(arch, args.output, formats, class_name=args.class_name, weights=weights, seed=args.seed,
                     log=None if args.quiet else (lambda line: out.print(line, markup=False, highlight=False)))
    if "py" in written:
        lines = written["py"].read_text().count("\n")
        out.print(f"{safe_text(arch.name)}: {len(written)} file(s) in {args.output}; model.py has {lines} lines "
                  f"(`from model import {args.class_name}`)", markup=False, highlight=False)
    return 0


def register(sub) -> None:
    from nas.export import FORMATS

    parser = sub.add_parser("export", help="write an architecture as PyTorch source, weights, TorchScript, ONNX",
                            description="Export SOURCE — an architecture file, a zoo name, or a run folder "
                                        "(its arch.yaml and weights.pt) — in the chosen formats.")
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("--format", default="py,yaml,weights",
                        help=f"comma-separated: {','.join(FORMATS)} (default py,yaml,weights)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR")
    parser.add_argument("--class-name", default="Net", help="name of the exported nn.Module class")
    parser.add_argument("--weights", default=None, metavar="W", help="a state_dict (.pt) to export")
    parser.add_argument("--seed", type=int, default=0, help="seed of fresh weights when none are given")
    parser.add_argument("--input-size", type=positive_int("--input-size"), default=None,
                        help="override the input resolution")
    parser.set_defaults(func=_export)
