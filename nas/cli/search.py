"""`nas search RECIPE`: run a search recipe (multi-trial on Ray Tune, or DNAS) into a run folder."""
from __future__ import annotations

import time
from pathlib import Path

from nas.dsl.errors import SpecError


def _search(args) -> int:
    from nas.recipe import load_recipe
    from nas.runs import RunDir

    if args.resume:
        if args.recipe is not None:
            raise SpecError("give RECIPE or --resume RUN_DIR, not both", "nas search",
                            "a resumed search uses the recipe saved in its run folder")
        if args.sets or args.output:
            raise SpecError("--set and -o do not apply to --resume", "nas search",
                            "a resumed search continues with its saved recipe")
        saved = Path(args.resume) / "recipe.yaml"
        if not saved.is_file():
            raise SpecError("not a search run folder (no recipe.yaml)", args.resume,
                            "resume a folder that `nas search` wrote")
        recipe = load_recipe(saved)
        cluster = _cluster(recipe, args.address)
        prepared = _prepare(recipe, args.address)
        with cluster:
            return _run(args, recipe, prepared, RunDir.create(args.resume, kind="search", resume=True))
    else:
        if args.recipe is None:
            raise SpecError("no recipe given", "nas search", "give RECIPE (a YAML file), or --resume RUN_DIR")
        recipe = load_recipe(args.recipe, args.sets)
        out = args.output or f"runs/{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        cluster = _cluster(recipe, args.address)
        prepared = _prepare(recipe, args.address)
        with cluster:
            return _run(args, recipe, prepared, RunDir.create(out, kind="search", overwrite=args.overwrite))


def _run(args, recipe, prepared, run) -> int:
    with run:
        if recipe.sweep:
            return _family(recipe, run, args)
        if recipe.strategy.name == "dnas":
            from nas.supernet import run_dnas
            from nas.supernet.strategy import format_summary

            if not args.resume:
                run.write_text("recipe.yaml", recipe.to_yaml())
            try:
                summary = run_dnas(recipe, run, quiet=args.quiet, address=args.address)
            finally:
                if prepared is not None:  # the Ray that _prepare started for the workers
                    prepared.close()
            if not args.quiet:
                print(format_summary(summary, run.path))
            return 0
        from nas.search.runner import run_search

        if not args.quiet:
            print(f"{recipe.name}: {recipe.strategy.name} on {recipe.space.source}, "
                  f"{recipe.budget.trials} trials → {run.path}")
        run_search(recipe, run, resume=bool(args.resume), quiet=args.quiet, address=args.address, prepared=prepared)
    return 0


def _family(recipe, run, args) -> int:
    """A `sweep:` recipe: one DNAS search per value (Ray Tune trials); the family's table. Exit 1 when a
    member failed (--resume runs it again)."""
    from nas.report import console
    from nas.search.family import family_table, run_family

    out = console()
    summary = run_family(recipe, run, resume=bool(args.resume), quiet=args.quiet, address=args.address,
                         log=lambda line: out.print(line, markup=False, highlight=False))
    if not args.quiet:
        out.print(family_table(summary))
        out.print(f"run folder: {run.path} (family.csv, summary.json, members/)", markup=False, highlight=False)
    return 0 if all(row["status"] == "done" for row in summary["members"]) else 1


def _cluster(recipe, address):
    """Ray, to be joined before the run folder is made (a bad address leaves nothing behind); a malformed or
    unreachable address fails here at once, before the data loads. DNAS joins in `_prepare` (its workers)."""
    from contextlib import nullcontext

    if recipe.strategy.name == "dnas":
        return nullcontext()
    from nas.search.tuner import check_reachable, ray_connection

    where = "--address" if address else str(recipe.where("ray", "address"))
    if address or recipe.ray_address:
        check_reachable(address or recipe.ray_address, where)
    return ray_connection(address or recipe.ray_address, recipe.resources, where)


def _prepare(recipe, address: str | None = None):
    """Every user error of a multi-trial recipe surfaces before the run folder is made; so does a DNAS
    worker count the Ray cluster cannot hold (its Ray stays up for the search: close it after)."""
    if recipe.strategy.name == "dnas":
        recipe.load_space()  # a space that cannot load is a located error before the run folder is made
        if recipe.resources.workers == 1:
            return None
        from nas.supernet.ddp import connect

        return connect(recipe, address)
    from nas.search.runner import prepare

    return prepare(recipe)


def register(sub) -> None:
    p = sub.add_parser("search", help="run a search recipe (random, grid, evolution, reinforce, tpe, nsga2, dnas)",
                       description="Run the search a recipe describes. Multi-trial strategies train each "
                                   "candidate as a Ray Tune trial; results go to the run folder (trials.csv, "
                                   "best.arch.yaml or pareto/, summary.json, study.db, Ray's experiment "
                                   "folder). A DNAS recipe with `sweep:` runs one search per value as Ray Tune trials "
                                   "(members/, family.csv). --resume continues a killed search without losing "
                                   "or repeating finished trials.")
    p.add_argument("recipe", metavar="RECIPE", nargs="?", default=None, help="recipe YAML file")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a recipe value, e.g. --set budget.trials=8 (repeatable)")
    p.add_argument("--address", default=None, help="join the Ray cluster at HOST:PORT (or auto; default: "
                                                    "ray.address, else a local Ray); a cluster with token auth also "
                                                    "needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN")
    p.add_argument("-o", "--output", metavar="RUN_DIR", default=None,
                   help="run folder (default runs/<recipe>-<YYYYmmdd-HHMMSS>)")
    p.add_argument("--overwrite", action="store_true", help="clear RUN_DIR first if it is an old run folder")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue an interrupted search")
    p.set_defaults(func=_search)
