"""`nas scale`: EfficientNet compound scaling of any block architecture (B0 by default)."""
from __future__ import annotations

import json

from rich.markup import escape
from rich.table import Table

from nas.cli._args import number as _float
from nas.dsl.errors import SpecError

_ONE_DIMENSION = ("depth", "width", "resolution")


def _base(args):
    from nas.dsl import load
    from nas.scaling import check_base
    from nas.zoo import resolve_source

    return check_base(load(resolve_source(args.base)))


def _check_output(flag: str, path: str | None) -> None:
    """An output file path that cannot be written is refused before the (possibly long) scaling runs."""
    from pathlib import Path

    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise SpecError("is a folder, expected a file path", flag, f"e.g. {Path(path) / 'scaled.yaml'}")
    if target.exists() and not target.is_file():  # a pipe or a device: the writer's rename would replace it
        raise SpecError("not a regular file: refusing to replace it", flag, "write to a file path")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SpecError(f"'{parent}' is a file, so '{path}' cannot be created", flag)
            break


def _check_flags(args) -> None:
    """Flags that would be silently ignored are errors instead."""
    _check_output("-o", args.output)
    _check_output("--py", args.py)
    dims = [d for d in _ONE_DIMENSION if getattr(args, d) is not None]
    if args.table:
        clash = [flag for flag, given in (("--phi", args.phi is not None), ("--official", args.official),
                                          ("-o", args.output), ("--py", args.py))
                 if given] + [f"--{d}" for d in dims]
        if clash:
            raise SpecError(f"--table prints φ = 0…7 and writes nothing; it does not combine with {clash[0]}",
                            clash[0], "drop --table to scale to one φ")
        return
    if dims and (args.phi is not None or args.official):
        raise SpecError(f"--{dims[0]} scales one dimension; it does not combine with --phi/--official",
                        f"--{dims[0]}")
    coeff = next((f"--{c}" for c in ("alpha", "beta", "gamma") if getattr(args, c) is not None), None)
    if coeff and (dims or args.official):
        raise SpecError(f"{coeff} sets the compound formula; it does not combine with "
                        f"{'--official' if args.official else '--' + dims[0]}", coeff,
                        "use --phi with --alpha/--beta/--gamma")
    if not dims and args.phi is None:
        raise SpecError("say how much to scale", "--phi", "give --phi N, --table, or --depth/--width/--resolution")


def _result(args, base):
    from nas import scaling

    dims = [d for d in _ONE_DIMENSION if getattr(args, d) is not None]
    if dims:
        given = lambda value: 1.0 if value is None else value  # noqa: E731 - 0 is a value (and an error)
        return scaling.scale_dimensions(base, depth=given(args.depth), width=given(args.width),
                                        resolution=given(args.resolution))
    if args.official:
        if args.phi != int(args.phi):
            raise SpecError(f"--official takes an integer φ from 0 to 7, got {args.phi:g}", "--phi")
        return scaling.official(base, int(args.phi))
    return scaling.scale(base, args.phi, args.alpha, args.beta, args.gamma)


def _channels(old, new) -> str:
    return "—" if old is None else f"{old} → {new}"


def _print_report(rep, console) -> None:
    from nas.report import human

    result, m = rep.result, rep.result.multipliers
    if result.official:
        console.print(f"[bold]official EfficientNet-B{int(result.phi)} table[/bold]: width {m.width:g}, "
                      f"depth {m.depth:g}, resolution {result.size}, dropout "
                      f"{result.arch.doc['head'][-1].get('dropout', 0):g}")
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
    for part, op, c_old, c_new, n_old, n_new in result.rows():
        repeats = "1" if part in ("stem", "head") else f"{n_old} → {n_new}"
        table.add_row(part, escape(op), _channels(c_old, c_new), repeats)
    console.print(table)
    base_size = result.base.doc["input"]["size"]
    line = (f"input {result.size}×{result.size} (base {base_size}×{base_size}): "
            f"params {rep.params:,} ({human(rep.params)}), FLOPs {human(rep.flops)}; "
            f"FLOPs ×{rep.flops_growth:.3g} of {escape(result.base.name)} (d·w²·r² = {m.flops_growth:.3g}")
    if rep.target_growth is not None:
        line += f", 2^φ = {rep.target_growth:.2f}"
    console.print(line + ")")


def _print_table(rows, base, console) -> None:
    from nas.report import human

    paper = any(row.paper for row in rows)
    table = Table(title=f"compound scaling of {escape(base.name)}: formula (α^φ, β^φ, γ^φ) vs the official "
                        "B0–B7 multipliers", title_justify="left")
    columns = ["φ", "formula d/w/res", "params", "FLOPs", "×B0", "2^φ", "official d/w/res", "params", "FLOPs"]
    if paper:
        columns += ["paper params/FLOPs", "official/paper"]
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        f, o = row.formula, row.official
        fm, om = f.result.multipliers, o.result.multipliers
        cells = [str(row.phi), f"{fm.depth:.2f}/{fm.width:.2f}/{f.result.size}", human(f.params), human(f.flops),
                 f"{f.flops_growth:.2f}", f"{2 ** row.phi:g}", f"{om.depth:.1f}/{om.width:.1f}/{o.result.size}",
                 human(o.params), human(o.flops)]
        if paper:
            p_params, p_flops = row.paper
            cells += [f"{human(p_params)}/{human(p_flops)}", f"{o.params / p_params:.3f}/{o.flops / p_flops:.3f}"]
        table.add_row(*cells)
    console.print(table)


def _table(args, base, console) -> int:
    from nas import scaling

    if args.quiet:
        rows = scaling.compare(base, args.alpha, args.beta, args.gamma)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        from nas.report import console as make_console

        with Progress(TextColumn("counting φ = 0…7"), BarColumn(), MofNCompleteColumn(),
                      console=make_console(stderr=True), transient=True) as progress:
            task = progress.add_task("count", total=8)
            rows = scaling.compare(base, args.alpha, args.beta, args.gamma,
                                   on_step=lambda phi: progress.update(task, completed=phi + 1))
    _print_table(rows, base, console)
    if args.json:
        print(json.dumps([{"phi": r.phi, "formula": r.formula.as_dict(), "official": r.official.as_dict(),
                           "paper": r.paper} for r in rows]))
    return 0


def _scale(args) -> int:
    from nas.report import console as make_console

    console = make_console()
    _check_flags(args)
    base = _base(args)
    if args.table:
        return _table(args, base, console)
    from nas import scaling

    result = _result(args, base)
    if args.py:
        try:
            from nas.export import write_python
        except ImportError as err:
            raise SpecError(f"--py needs nas.export.write_python, which could not be imported ({err})", "--py",
                            "write the YAML with -o and export it later") from None
    rep = scaling.report(result)
    _print_report(rep, console)
    if args.output:
        from nas.dsl import dump

        dump(result.arch, args.output, header=f"{result.base.name} scaled by `nas scale`")
        console.print(f"wrote {escape(str(args.output))}")
    if args.py:
        write_python(result.arch, args.py)
        console.print(f"wrote {escape(str(args.py))}")
    if args.json:
        print(json.dumps(rep.as_dict()))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("scale", help="EfficientNet compound scaling: depth α^φ, width β^φ, resolution γ^φ",
                            description="Scale a block architecture (default EfficientNet-B0) by compound "
                                        "scaling or one dimension at a time; --official uses the released B0-B7 "
                                        "table; --table prints φ = 0…7, formula vs official.")
    parser.add_argument("--base", default="b0", help="zoo name (b0 = efficientnet_b0) or an architecture file")
    parser.add_argument("--phi", type=_float("--phi"), default=None, help="compound coefficient φ (may be fractional)")
    parser.add_argument("--alpha", type=_float("--alpha"), default=None,
                        help="depth coefficient (default: the base's scaling: section, else 1.2)")
    parser.add_argument("--beta", type=_float("--beta"), default=None, help="width coefficient (else 1.1)")
    parser.add_argument("--gamma", type=_float("--gamma"), default=None, help="resolution coefficient (else 1.15)")
    parser.add_argument("--official", action="store_true", help="use the published B0-B7 table (integer φ)")
    parser.add_argument("--table", action="store_true", help="φ = 0…7, formula vs official, params and FLOPs")
    parser.add_argument("--depth", type=_float("--depth"), default=None, help="scale depth only by this multiplier")
    parser.add_argument("--width", type=_float("--width"), default=None, help="scale width only")
    parser.add_argument("--resolution", type=_float("--resolution"), default=None, help="scale resolution only")
    parser.add_argument("-o", "--output", metavar="FILE.yaml", help="write the scaled architecture")
    parser.add_argument("--py", metavar="FILE.py", help="write it as a standalone PyTorch module")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.set_defaults(func=_scale)
