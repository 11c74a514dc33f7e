"""`nas train` and `nas eval`: train a fixed architecture on a dataset, or evaluate saved weights."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from nas.cli._args import number as _number
from nas.cli._args import positive_int as _positive_int
from nas.cli._args import seed as _seed
from nas.dsl.errors import SpecError

# What config.json records, and the type each must have when a run is resumed (the file may be damaged).
SAVED_ARGS = {"arch": str, "data": str, "size": int, "data_root": (str, type(None)), "channels": (int, type(None)),
              "epochs": int, "batch_size": int, "lr": (int, float), "optimizer": str, "weight_decay": (int, float),
              "warmup": (int, float), "label_smoothing": (int, float), "drop_path": (int, float), "augment": bool,
              "device": str, "seed": int}


def _load_fixed(source: str):
    from nas.dsl import load
    from nas.zoo import resolve_source

    return load(resolve_source(source)).require_fixed(
        "pass a fixed architecture (resolve one with `nas show FILE --sample SEED`)")


def _fit(arch, data):
    """The architecture with the data's input and classes, recording the preprocessing it is trained with."""
    from nas.dsl.transform import with_preprocess

    arch = arch.with_input(channels=data.channels, size=data.size).with_classes(data.classes)
    return with_preprocess(arch, data.preprocess)


def _dataset(args, preprocess: dict | None = None):
    """The data set; prepared as `preprocess` says (a trained model's record) when one is given."""
    from nas.data import load_dataset

    return load_dataset(args.data, size=args.size, root=args.data_root, seed=args.seed,
                        channels=args.channels, preprocess=preprocess)


def _config(args):
    from nas.train import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                       weight_decay=args.weight_decay, warmup_epochs=args.warmup, label_smoothing=args.label_smoothing,
                       drop_path=args.drop_path, augment=args.augment, device=args.device, seed=args.seed)


def _set_threads(args) -> int:
    """torch's CPU threads: --threads, else the CPUs this process was given (on a busy 2-core machine torch's
    default was measured 10-20x slower than one thread)."""
    import torch

    from nas.train import available_cpus

    threads = args.threads or available_cpus()
    torch.set_num_threads(threads)
    return threads


def _restore_args(args, run_dir: Path) -> None:
    """The interrupted run's settings from its config.json, each checked, so the result is the same."""
    from nas.runs import read_json

    saved = run_dir / "config.json"
    if not saved.is_file():
        raise SpecError("no config.json in the run folder", str(saved), "resume a folder `nas train` wrote")
    config = read_json(saved)
    if not isinstance(config, dict) or not isinstance(config.get("args"), dict):
        raise SpecError("config.json must be an object with 'args'", str(saved), "the file is damaged")
    for key, value in config["args"].items():
        kind = SAVED_ARGS.get(key)
        if kind is None:
            raise SpecError(f"config.json has an unknown setting '{key}'", str(saved), "the file is damaged")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise SpecError(f"config.json: '{key}' has the wrong type ({type(value).__name__})", str(saved),
                            "the file is damaged")
        setattr(args, key, value)
    args.arch = str(run_dir / "arch.yaml")  # the architecture it trained, even if the source moved since


def _open_run(args):
    from nas.runs import RunDir

    if args.resume:
        if args.output or args.overwrite:
            raise SpecError("--resume continues RUN_DIR in place", "--resume", "drop -o and --overwrite")
        return RunDir.create(args.resume, kind="train", resume=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RunDir.create(args.output or f"runs/train-{Path(args.arch).stem}-{stamp}", kind="train",
                         overwrite=args.overwrite)


def _train(args) -> int:
    if args.arch is None and not args.resume:
        raise SpecError("no architecture given", "nas train",
                        "give ARCH (a YAML file or zoo name), or --resume RUN_DIR")
    if args.resume:
        with _open_run(args) as run:  # locked before its config is read: no other writer can change it
            _restore_args(args, run.path)
            return _train_in(args, run)
    data, arch, model = _prepare(args)  # bad input fails before the run folder exists
    with _open_run(args) as run:
        run.write_json("config.json", {"args": {key: getattr(args, key) for key in SAVED_ARGS}})
        import nas

        run.write_text("arch.yaml", nas.dumps(arch, header=f"trained by `nas train` on {data.name}"))
        return _train_in(args, run, (data, arch, model))


def _prepare(args):
    import nas
    from nas.train import check_input, pick_device

    _config(args).check()
    device = pick_device(args.device)
    arch = _load_fixed(args.arch)
    data = _dataset(args, arch.doc.get("preprocess") if args.resume else None)
    arch = _fit(arch, data)
    model = nas.build(arch, seed=args.seed)
    check_input(model.to(device), data, device)  # a size the network cannot take fails before anything is written
    return data, arch, model


def _train_in(args, run, prepared=None) -> int:
    from nas.report import console
    from nas.train import finite_state, train

    out = console()
    threads = _set_threads(args)  # not saved with the run: a resumed run may get other CPUs
    data, arch, model = prepared or _prepare(args)
    run_dir = run.path
    out.print(f"{arch.name} on {data.describe()} → {run_dir} ({threads} CPU thread{'s' * (threads > 1)})",
              markup=False, highlight=False)

    def report(metrics: dict) -> None:
        if not args.quiet:
            out.print(f"epoch {metrics['epoch']:>3}  loss {metrics['train_loss']:.4f}  "
                      f"train {metrics['train_acc']:.4f}  val {metrics['val_acc']:.4f}  "
                      f"lr {metrics['lr']:.4g}  {metrics['images_per_s']:.0f} img/s")

    if args.quiet:
        result = train(model, data, _config(args), callback=report, run_dir=run, resume=bool(args.resume))
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=out, transient=True) as progress:
            task = progress.add_task("train", total=None)

            def on_step(step: int, steps: int) -> None:
                progress.update(task, completed=step, total=steps)

            result = train(model, data, _config(args), callback=report, run_dir=run,
                           resume=bool(args.resume), on_step=on_step)
    run.write_json("metrics.json", result.as_dict())
    if result.status == "nan" or not finite_state(model):  # never replace good weights with NaN ones
        out.print(f"[red]stopped: the loss or the weights became NaN at epoch {result.final['epoch']}[/red] "
                  f"(try a lower --lr); "
                  f"weights.pt not written, checkpoint.pt holds the last good epoch")
        return 1
    run.save_torch("weights.pt", model.state_dict())
    out.print(f"test accuracy {result.test_acc:.4f} (loss {result.test_loss:.4f}); "
              f"weights, metrics.json and arch.yaml in {run_dir}")
    return 0


def _eval(args) -> int:
    import nas
    from nas.train import evaluate, load_weights, pick_device

    arch = _load_fixed(args.arch)
    data = _dataset(args, arch.doc.get("preprocess"))  # a trained arch.yaml says how its inputs were prepared
    arch = _fit(arch, data)
    model = nas.build(arch)
    load_weights(args.weights, model)
    device = pick_device(args.device)
    loss, acc = evaluate(model.to(device), *_split(data, args.split), device=device)
    finite = {"loss": loss, "accuracy": acc}
    finite = {k: v if math.isfinite(v) else None for k, v in finite.items()}  # an empty split: null, not NaN
    print(json.dumps({"arch": arch.name, "data": data.name, "split": args.split, **finite}, allow_nan=False))
    return 0


def _split(data, name: str):
    """One split's (x, y), or `all` of them (a held-out file evaluated whole)."""
    if name != "all":
        return tuple(getattr(data, name))
    import torch

    parts = (data.train, data.val, data.test)
    return torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts])


def _data_arguments(parser, arch_optional: bool = False) -> None:
    from nas.data import DATASETS

    if arch_optional:
        parser.add_argument("arch", metavar="ARCH", nargs="?", default=None,
                            help="architecture YAML or zoo name (with --resume, the run folder's own is used)")
    else:
        parser.add_argument("arch", metavar="ARCH", help="architecture YAML or zoo name")
    parser.add_argument("--data", default="digits", help=f"dataset: {', '.join(DATASETS)} (default digits)")
    parser.add_argument("--data-root", default=None, help="archive, folder or .npz file for the dataset")
    parser.add_argument("--size", type=_positive_int("--size"), default=32, help="image size (default 32)")
    parser.add_argument("--channels", type=_positive_int("--channels"), default=None,
                        help="input channels (default: the data's own)")
    parser.add_argument("--seed", type=_seed("--seed"), default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")


def register(sub) -> None:
    train = sub.add_parser("train", help="train a fixed architecture and save weights and metrics",
                           description="Train an architecture (a YAML file, zoo name, scaled model or search "
                                       "result). Writes weights.pt, metrics.json, arch.yaml and a checkpoint "
                                       "per epoch into the run folder; --resume continues an interrupted run.")
    _data_arguments(train, arch_optional=True)
    train.add_argument("--epochs", type=_positive_int("--epochs"), default=10)
    train.add_argument("--batch-size", type=_positive_int("--batch-size"), default=64)
    train.add_argument("--lr", type=_number("--lr"), default=0.05)
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    train.add_argument("--weight-decay", type=_number("--weight-decay"), default=5e-4)
    train.add_argument("--warmup", type=_number("--warmup"), default=1.0, help="warm-up epochs (default 1)")
    train.add_argument("--label-smoothing", type=_number("--label-smoothing"), default=0.0)
    train.add_argument("--drop-path", type=_number("--drop-path"), default=0.0, help="stochastic depth rate")
    train.add_argument("--augment", action="store_true", help="random crop with padding and horizontal flip")
    train.add_argument("--threads", type=_positive_int("--threads"), default=None, metavar="N",
                       help="torch CPU threads (default: the CPUs this process may use)")
    train.add_argument("-o", "--output", metavar="RUN_DIR", default=None, help="run folder")
    train.add_argument("--resume", metavar="RUN_DIR", default=None,
                       help="continue an interrupted run with its own architecture and settings")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder given by -o")
    train.set_defaults(func=_train)

    ev = sub.add_parser("eval", help="evaluate saved weights on a dataset split",
                        description="Evaluate an architecture's weights (a state_dict) on a dataset split. "
                                    "An arch.yaml written by `nas train` carries its preprocessing (input size, "
                                    "mean, std), which is applied to the data instead of --size and the data's "
                                    "own statistics.")
    _data_arguments(ev)
    ev.add_argument("--weights", required=True, metavar="W", help="weights.pt from `nas train`")
    ev.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                    help="which split (default test); `all` evaluates every image (a held-out file)")
    ev.set_defaults(func=_eval)
