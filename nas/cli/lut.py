"""`nas lut`: time every (choice, option) of a space on this machine and write the latency table."""
from __future__ import annotations

from pathlib import Path

from nas.cli._args import integer, positive_int
from nas.dsl.errors import SpecError


def _lut(args) -> int:
    from nas.cost.latency import Timing
    from nas.cost.lut_file import build_lut, write_lut

    out = Path(args.output)
    if out.exists() and not out.is_file():  # never replace a folder, a pipe or a device such as /dev/null
        raise SpecError(f"{args.output} is not a regular file", "-o", "name a new or existing .json file")
    space = _space(args)
    timing = Timing(args.device, threads=args.threads, batch=args.batch, warmup=args.warmup, repeats=args.repeats,
                    statistic=args.statistic, clock=args.clock, copies=args.copies)
    data = build_lut(space, timing)
    write_lut(data, args.output)
    fp, fixed = data["fingerprint"], data["fixed"]["ms"]
    entries = sum(len(t["entries"]) for t in data["terms"])
    print(f"{args.output}: {space.name} @ {'×'.join(map(str, data['space']['input']))}, {entries} entries in "
          f"{len(data['terms'])} terms + fixed part {fixed:.3f} ms; {fp['device']} ({fp['gpu'] or fp['cpu']}), "
          f"torch {fp['torch']}, {fp['threads']} thread(s), batch {fp['batch']}, {timing.statistic} of "
          f"{timing.repeats} ({timing.clock} clock)")
    return 0


def _space(args):
    """SPACE (as `nas show` reads it), or the space a recipe searches (its transforms, its data's shape)."""
    from nas.cli.show import _load

    if (args.file is None) == (args.recipe is None):
        raise SpecError("give a SPACE or --recipe RECIPE (one of them)", "nas lut", "e.g. nas lut fbnet -o lut.json")
    if args.file is not None:
        return _load(args)
    if args.input_size:
        raise SpecError("--input-size does not go with --recipe", "nas lut", "the recipe sets the input size")
    from nas.data import load_dataset
    from nas.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    d = recipe.data
    return recipe.load_space(load_dataset(d.name, size=d.size, root=d.root, val_fraction=d.val_fraction,
                                          seed=d.seed, channels=d.channels))


def register(sub) -> None:
    from nas.cli.show import _device
    from nas.cost.latency import CLOCKS, STATISTICS

    lut = sub.add_parser("lut", help="measure a per-choice latency table of a space on this machine",
                         description="Time each (choice, option) of SPACE at its own input shape on this machine "
                                     "(warm-up, then the median of --repeats runs, threads fixed), plus the "
                                     "layers no choice touches, and write a JSON table keyed by the machine's "
                                     "fingerprint and the space's content hash. SPACE is a file or a zoo name.")
    lut.add_argument("file", metavar="SPACE", nargs="?")
    lut.add_argument("--recipe", metavar="RECIPE", help="measure the space this recipe searches (for its lut: key)")
    lut.add_argument("-o", "--output", required=True, metavar="LUT.json", help="where to write the table")
    lut.add_argument("--device", type=_device, default="cpu", help="cpu or cuda (default cpu)")
    lut.add_argument("--input-size", type=positive_int("--input-size"), metavar="N", help="override the input resolution")
    lut.add_argument("--batch", type=integer("--batch", 1, 4096, "a batch size", "from 1 to 4096"), default=1)
    lut.add_argument("--threads", type=integer("--threads", 1, 1024, "a thread count", "from 1 to 1024"), default=1,
                     help="torch intra-op threads while timing (default 1)")
    lut.add_argument("--repeats", type=integer("--repeats", 1, 100000, "a number of runs", "from 1 to 100000"),
                     default=30, help="timed runs per entry (default 30)")
    lut.add_argument("--warmup", type=integer("--warmup", 0, 100000, "a number of runs", "from 0 to 100000"),
                     default=8, help="untimed runs first (default 8)")
    lut.add_argument("--statistic", choices=STATISTICS, default="median",
                     help="median (default) or min of the runs; min resists a busy machine")
    lut.add_argument("--clock", choices=CLOCKS, default="wall",
                     help="wall time (default), or the thread's CPU time (one thread on the CPU: a busy machine)")
    lut.add_argument("--copies", type=integer("--copies", 1, 64, "a number of copies", "from 1 to 64"), default=8,
                     help="op copies and inputs rotated through so each run starts cache-cold, as in the network")
    lut.set_defaults(func=_lut)
