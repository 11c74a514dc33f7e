"""`nas scale`: EfficientNet compound scaling of any block architecture (B0 by default)."""
from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from nas.cli._args import number as _float
from nas.dsl.errors import SpecError


def _base(args):
    from nas.dsl import load
    from nas.scaling import check_base
    from nas.zoo import resolve_source

    return check_base(load(resolve_source(args.base)))


def _result(args, base):
    from nas import scaling

    dims = [d for d in ("depth", "width", "resolution") if getattr(args, d) is not None]
    if dims and (args.phi is not None or args.official):
        raise SpecError(f"--{dims[0]} scales one dimension; it does not combine with --phi/--official",
                        f"--{dims[0]}")
    if dims:
        given = lambda value: 1.0 if value is None else value  # noqa: E731 - 0 is a value (and an error)
        return scaling.scale_dimensions(base, depth=given(args.depth), width=given(args.width),
                                        resolution=given(args.resolution))
    if args.phi is None:
        raise SpecError("say how much to scale", "--phi", "give --phi N, --table, or --depth/--width/--resolution")
    if args.official:
        if args.phi != int(args.phi):
            raise SpecError(f"--official takes an integer φ from 0 to 7, got {args.phi:g}", "--phi")
        return scaling.official(base, int(args.phi))
    return scaling.scale(base, args.phi, args.alpha, args.beta, args.gamma)


def _print_result(result, console) -> dict:
    from nas.cost import count_arch
    from nas.report import human

    m = result.multipliers
    if result.official:
        console.print(f"[bold]official EfficientNet-B{int(result.phi)} table[/bold]: width {m.width:g}, "
                      f"depth {m.depth:g}, resolution {result.size}")
    elif result.phi is not None:
        c = result.coefficients
        console.print(f"φ = {result.phi:g}, α = {c['alpha']:g}, β = {c['beta']:g}, γ = {c['gamma']:g} "
                      f"(α·β²·γ² = {c['alpha'] * c['beta'] ** 2 * c['gamma'] ** 2:.3f})")
        console.print(f"depth d = α^φ = {m.depth:.4f}, width w = β^φ = {m.width:.4f}, "
                      f"resolution r = γ^φ = {m.resolution:.4f}")
    else:
        console.print(f"depth ×{m.depth:g}, width ×{m.width:g}, resolution ×{m.resolution:g}")
    table = Table(title=f"{escape(result.arch.name)} @ {result.size}×{result.size}", title_justify="left")
    for col in ("stage", "op", "channels", "repeats"):
        table.add_column(col, justify="left" if col in ("stage", "op") else "right")
    for spec_old, spec_new, label in ((result.base.doc["stem"], result.arch.doc["stem"], "stem"),):
        for old, new in zip(spec_old, spec_new):
            table.add_row(label, old["op"], f"{old.get('c', '')} → {new.get('c', '')}", "1")
    for stage, op, c_old, c_new, n_old, n_new in result.stage_rows():
        table.add_row(stage, op, f"{c_old} → {c_new}", f"{n_old} → {n_new}")
    for old, new in zip(result.base.doc["head"], result.arch.doc["head"]):
        if old["op"] != "classifier":
            table.add_row("head", old["op"], f"{old.get('c', '')} → {new.get('c', '')}", "1")
    console.print(table)
    base_cost = count_arch(result.base).total
    cost = count_arch(result.arch).total
    growth = cost.flops / base_cost.flops
    line = (f"input {result.size}×{result.size}: params {cost.params:,} ({human(cost.params)}), "
            f"FLOPs {human(cost.flops)}; FLOPs ×{growth:.3g} of {result.base.name}")
    if result.phi is not None:
        line += f" (2^φ = {2 ** result.phi:.2f})"
    console.print(line)
    return {"name": result.arch.name, "size": result.size, "params": cost.params, "flops": cost.flops,
            "flops_growth": growth, "depth": m.depth, "width": m.width, "resolution": m.resolution,
            "phi": result.phi, "official": result.official}


def _print_table(base, args, console) -> None:
    from nas import scaling
    from nas.cost import count_arch
    from nas.report import human

    table = Table(title=f"compound scaling of {base.name}: formula (α^φ, β^φ, γ^φ) vs the official B0–B7",
                  title_justify="left")
    for col in ("φ", "formula d/w/res", "params", "FLOPs", "official d/w/res", "params", "FLOPs", "paper",
                "ours/paper"):
        table.add_column(col, justify="right")
    for phi in range(8):
        formula = scaling.scale(base, phi, args.alpha, args.beta, args.gamma)
        fc = count_arch(formula.arch).total
        off = scaling.official(base, phi)
        oc = count_arch(off.arch).total
        p_params, p_flops = scaling.PAPER[phi]
        fm, om = formula.multipliers, off.multipliers
        table.add_row(str(phi), f"{fm.depth:.2f}/{fm.width:.2f}/{formula.size}", human(fc.params), human(fc.flops),
                      f"{om.depth:.1f}/{om.width:.1f}/{off.size}", human(oc.params), human(oc.flops),
                      f"{human(p_params)}/{human(p_flops)}",
                      f"{oc.params / p_params:.3f}/{oc.flops / p_flops:.3f}")
    console.print(table)


def _scale(args) -> int:
    from nas.report import console as make_console

    console = make_console()
    base = _base(args)
    if args.table:
        _print_table(base, args, console)
        return 0
    result = _result(args, base)
    summary = _print_result(result, console)
    if args.output:
        from nas.dsl import dump

        dump(result.arch, args.output, header=f"{result.base.name} scaled by `nas scale`")
        console.print(f"wrote {args.output}")
    if args.py:
        from nas.export import write_python

        write_python(result.arch, args.py)
        console.print(f"wrote {args.py}")
    if args.json:
        print(json.dumps(summary))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("scale", help="EfficientNet compound scaling: depth α^φ, width β^φ, resolution γ^φ",
                            description="Scale a block architecture (default EfficientNet-B0) by compound "
                                        "scaling or one dimension at a time; --official uses the released B0-B7 "
                                        "table; --table prints φ = 0…7, formula vs official.")
    parser.add_argument("--base", default="b0", help="zoo name (b0 = efficientnet_b0) or an architecture file")
    parser.add_argument("--phi", type=_float("--phi"), default=None, help="compound coefficient φ (may be fractional)")
    parser.add_argument("--alpha", type=_float("--alpha"), default=None, help="depth coefficient (default from base)")
    parser.add_argument("--beta", type=_float("--beta"), default=None, help="width coefficient")
    parser.add_argument("--gamma", type=_float("--gamma"), default=None, help="resolution coefficient")
    parser.add_argument("--official", action="store_true", help="use the published B0-B7 table (integer φ)")
    parser.add_argument("--table", action="store_true", help="φ = 0…7, formula vs official, params and FLOPs")
    parser.add_argument("--depth", type=_float("--depth"), default=None, help="scale depth only by this multiplier")
    parser.add_argument("--width", type=_float("--width"), default=None, help="scale width only")
    parser.add_argument("--resolution", type=_float("--resolution"), default=None, help="scale resolution only")
    parser.add_argument("-o", "--output", metavar="FILE.yaml", help="write the scaled architecture")
    parser.add_argument("--py", metavar="FILE.py", help="write it as a standalone PyTorch module")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.set_defaults(func=_scale)
