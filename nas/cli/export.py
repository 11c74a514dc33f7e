"""`nas export`: ship an architecture as standalone PyTorch source, weights, TorchScript or ONNX."""
from __future__ import annotations

from nas.cli._args import positive_int
from nas.cli._args import seed as _seed


def _export(args) -> int:
    from pathlib import Path

    from nas.dsl.errors import SpecError
    from nas.export import export, parse_formats, resolve_source, safe_text
    from nas.report import console
    from nas.runs import is_within

    formats = parse_formats(args.format)
    arch, run_weights = resolve_source(args.source)
    if Path(args.source).is_dir() and is_within(args.output, args.source):
        raise SpecError("refusing to export into the run folder it reads", args.output,
                        f"choose an -o outside {args.source}")
    if args.input_size:
        arch = arch.with_input(size=args.input_size)
    if args.sample is not None and arch.choices():
        arch = arch.resolve(arch.sample(args.sample))
    weights = args.weights or run_weights
    out = console()
    written = export(arch, args.output, formats, class_name=args.class_name, weights=weights, seed=args.seed,
                     log=None if args.quiet else (lambda line: out.print(line, markup=False, highlight=False)),
                     overwrite=args.overwrite)
    summary = f"{safe_text(arch.name)}: {len(written)} file(s) in {args.output}"
    if "py" in written:
        lines = written["py"].read_text(encoding="utf-8").count("\n")
        summary += f"; model.py has {lines} lines (`from model import {args.class_name}`)"
    out.print(summary, markup=False, highlight=False)
    return 0


def register(sub) -> None:
    from nas.export import FORMATS

    parser = sub.add_parser("export", help="write an architecture as PyTorch source, weights, TorchScript, ONNX",
                            description="Export SOURCE — an architecture file, a zoo name, or a run folder "
                                        "(its arch.yaml and weights.pt, or best/ inside it) — in the chosen "
                                        "formats: model.py (standalone, imports only torch), arch.yaml, "
                                        "weights.pt, model.torchscript.pt (traced), model.onnx (needs nas[onnx]).")
    parser.add_argument("source", metavar="SOURCE", help="architecture file, zoo name, or run folder")
    parser.add_argument("--format", default="py,yaml,weights",
                        help=f"comma-separated: {','.join(FORMATS)} (default py,yaml,weights)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="folder to write into")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in OUT_DIR")
    parser.add_argument("--class-name", default="Net", metavar="NAME",
                        help="name of the exported nn.Module class (default Net)")
    parser.add_argument("--weights", default=None, metavar="W",
                        help="a state_dict file to export (default: the run folder's, else fresh weights)")
    parser.add_argument("--seed", type=_seed("--seed"), default=0,
                        help="seed of fresh weights when none are given (default 0)")
    parser.add_argument("--sample", type=_seed("--sample"), default=None, metavar="SEED",
                        help="when SOURCE is a search space, export its architecture sampled with SEED")
    parser.add_argument("--input-size", type=positive_int("--input-size"), default=None, metavar="N",
                        help="override the input resolution")
    parser.set_defaults(func=_export)
