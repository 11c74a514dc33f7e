"""`nas show` and `nas count`: what a space or architecture is, and what it costs."""
from __future__ import annotations

import json

from nas.cli._args import integer, positive_int
from nas.dsl.errors import SpecError


def _load(args):
    from nas.dsl import load
    from nas.zoo import resolve_source

    space = load(resolve_source(args.file))
    if getattr(args, "input_size", None):
        space = space.with_input(size=args.input_size)
    return space


def _arch(space, sample):
    if not space.choices():
        return space
    if sample is None:
        space.require_fixed("pick one architecture with --sample SEED")
    return space.resolve(space.sample(sample))


def _show(args) -> int:
    from nas.cost import count_arch
    from nas.report import console as report_console
    from nas.report import space_summary, unit_table

    console = report_console()
    space = _load(args)
    choices = space.choices()
    from rich.markup import escape

    console.print(f"[bold]{escape(space.name)}[/bold]"
                  + (f" — {escape(space.doc['description'])}" if "description" in space.doc else ""))
    shape = space.doc["input"]
    console.print(f"input {shape['channels']}×{shape['size']}×{shape['size']}, {space.doc['classes']} classes, "
                  f"{len(choices)} choices, space size {_magnitude(space.size())}")
    console.print(space_summary(space))
    if args.figure:
        _figure(_arch(space, args.sample), args.figure, args.dpi)
        console.print(f"figure: {args.figure}")
    if choices and args.sample is None:
        names = list(choices)
        shown = names[:6] + (["…"] if len(names) > 6 else [])
        console.print("choices: " + ", ".join(shown))
        return 0
    arch = _arch(space, args.sample)
    if choices:
        from nas.dsl import dumps

        console.print(f"[bold]sample {args.sample}[/bold] (resolved architecture):")
        console.print(dumps(arch), markup=False, highlight=False)
    console.print(unit_table(count_arch(arch, per_unit=True)))
    return 0


def _figure(arch, path: str, dpi: int) -> None:
    """The architecture as a picture (cells as graphs, blocks as FBNet-style boxes), written atomically."""
    from pathlib import Path

    from nas.reporting.figures.arch import arch_figure
    from nas.dsl import write_text_atomic
    from nas.reporting.figures.common import png_bytes

    if not path.lower().endswith(".png"):
        raise SpecError(f"--figure writes a PNG file, got '{path}'", "--figure", "e.g. --figure arch.png")
    target = Path(path)
    if target.is_dir():
        raise SpecError("is a folder, expected a file path", "--figure")
    if not target.parent.is_dir():
        raise SpecError(f"no folder '{target.parent}' to write into", "--figure", "make the folder first")
    write_text_atomic(target, png_bytes(arch_figure(arch), dpi))


def _count(args) -> int:
    from nas.cost import count_arch
    from nas.report import human

    space = _load(args)
    arch = _arch(space, args.sample)
    if args.lut is None and (args.threads or args.batch):
        raise SpecError("--threads and --batch go with --lut", "nas count", "add --lut LUT.json")
    cost = count_arch(arch, latency=args.latency, device=args.device)
    table_line, table_fields = _against_lut(args, space, arch, cost) if args.lut else (None, {})
    if args.json:
        print(json.dumps(dict(cost.as_dict(), **table_fields)))
        return 0
    c, h, w = cost.input_shape
    line = f"{cost.name} @ {c}×{h}×{w}: params {cost.total.params:,} ({human(cost.total.params)}), " \
           f"FLOPs {cost.total.flops:,.0f} ({human(cost.total.flops)} multiply-adds)"
    if cost.total.latency_ms is not None:
        line += f", latency {cost.total.latency_ms:.2f} ms (median, batch 1, {args.device or 'auto'})"
    print(line)
    if table_line:
        print(table_line)
    return 0


def _against_lut(args, space, arch, cost) -> tuple[str, dict]:
    """Price `arch` from the table and time it end to end with the table's settings: the line to print and
    the fields for --json."""
    from dataclasses import replace

    from nas.builder import build
    from nas.cost.latency import time_forward
    from nas.cost.lut_file import LatencyTable

    table = LatencyTable.load(args.lut)
    table.check_machine(args.device, args.threads, args.batch)
    if space.choices():  # a space and --sample: the same space document, then the same op instances
        table.check_space(space)
    plan = arch.plan()
    predicted = table.latency_of(plan.units(), arch.name)
    # a whole network is cache-cold by itself; --device cuda:N picks the card (check_machine saw it is the same)
    timing = replace(table.timing, copies=1, device=args.device or table.timing.device)
    measured = time_forward([build(arch)], plan.input_shape, timing)
    fp = table.fingerprint
    return (f"latency: table {predicted:.3f} ms (sum of {args.lut}), measured {measured:.3f} ms end to end "
            f"({timing.statistic} of {timing.repeats}, {fp['device']}, {fp['threads']} thread(s), batch "
            f"{fp['batch']}, {timing.clock} clock); measured / table {measured / predicted:.2f}",
            {"lut_ms": predicted, "measured_ms": measured, "lut": args.lut, "timing": timing.as_dict()})


def _device(text: str) -> str:
    if text not in ("auto", "cpu") and not text.startswith("cuda") and text != "mps":
        raise SpecError(f"unknown device '{text}'", "--device", "use auto, cpu, cuda, cuda:N or mps")
    return text


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"--sample takes an integer seed, got '{text}'", "--sample") from None


def register(sub) -> None:
    show = sub.add_parser("show", help="summarize a space or architecture (per-layer table for an architecture)",
                          description="Summarize a search space or an architecture. FILE is a YAML file or a "
                                      "zoo name. With --sample SEED (or for a fixed architecture) print the "
                                      "per-layer table with params and FLOPs.")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--sample", type=_seed, metavar="SEED", help="resolve one random architecture of the space")
    show.add_argument("--input-size", type=positive_int("--input-size"), metavar="N", help="override the input resolution")
    show.add_argument("--figure", metavar="OUT.png", default=None,
                      help="draw the architecture: cells as graphs, blocks as FBNet-style layer boxes")
    show.add_argument("--dpi", type=integer("--dpi", 20, 600, "a resolution", "from 20 to 600 dots per inch"), default=120, metavar="N", help="--figure's resolution")
    show.set_defaults(func=_show)

    count = sub.add_parser("count", help="params, FLOPs (multiply-adds) and optionally latency",
                           description="Count params and FLOPs (multiply-adds, fvcore) of an architecture; "
                                       "--latency also measures the median forward time at batch 1.")
    count.add_argument("file", metavar="FILE")
    count.add_argument("--sample", type=_seed, metavar="SEED", help="resolve one random architecture of the space")
    count.add_argument("--input-size", type=positive_int("--input-size"), metavar="N", help="override the input resolution")
    count.add_argument("--latency", action="store_true", help="measure latency (warm-up, median of 20 runs)")
    count.add_argument("--device", type=_device, default=None,
                       help="torch device for --latency (default auto) or --lut (default the table's)")
    count.add_argument("--lut", metavar="LUT.json", help="also price it from a latency table (nas lut) and time it "
                                                          "end to end with the table's settings")
    count.add_argument("--threads", type=positive_int("--threads"), help="with --lut: must be the table's")
    count.add_argument("--batch", type=positive_int("--batch"), help="with --lut: must be the table's")
    count.add_argument("--json", action="store_true", help="print one JSON object")
    count.set_defaults(func=_count)


def _magnitude(size: int) -> str:
    """An exact integer as 4 significant digits, even beyond a float's range (1e308)."""
    if size < 10**300:
        return f"{size:.4g}"
    digits = str(size)
    return f"{digits[0]}.{digits[1:4]}e+{len(digits) - 1}"
