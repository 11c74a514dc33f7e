"""`nas train` and `nas eval`: train a fixed architecture on a dataset, or evaluate saved weights."""
from __future__ import annotations

import json
import time
from pathlib import Path

from nas.cli._args import number as _number
from nas.cli._args import positive_int as _positive_int
from nas.dsl.errors import SpecError


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


def _train(args) -> int:
    import nas
    from nas.report import console
    from nas.train import check_input, pick_device, save_atomic, train

    out = console()
    threads = _set_threads(args)  # not saved with the run: a resumed run may get other CPUs
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.json"
        if not saved.is_file():
            raise SpecError("not a run folder (no config.json)", str(run_dir), "resume a folder `nas train` wrote")
        for key, value in json.loads(saved.read_text())["args"].items():
            setattr(args, key, value)  # the interrupted run's settings, so the result is the same
        args.arch = str(run_dir / "arch.yaml")  # the architecture it trained, even if the source moved since
    else:
        if args.arch is None:
            raise SpecError("no architecture given", "nas train",
                            "give ARCH (a YAML file or zoo name), or --resume RUN_DIR")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path(args.output or f"runs/train-{Path(args.arch).stem}-{stamp}")
    device = pick_device(args.device)
    arch = _load_fixed(args.arch)
    data = _dataset(args, arch.doc.get("preprocess") if args.resume else None)
    arch = _fit(arch, data)
    _config(args).check()
    model = nas.build(arch, seed=args.seed)
    check_input(model.to(device), data, device)  # a size the network cannot take fails before anything is written
    if not args.resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved_args = {k: getattr(args, k) for k in ("arch", "data", "size", "data_root", "channels", "epochs",
                                                    "batch_size", "lr", "optimizer", "weight_decay", "warmup",
                                                    "label_smoothing", "drop_path", "augment", "device", "seed")}
        (run_dir / "config.json").write_text(json.dumps({"args": saved_args}, indent=2))
        nas.dump(arch, run_dir / "arch.yaml", header=f"trained by `nas train` on {data.name}")
    out.print(f"{arch.name} on {data.describe()} → {run_dir} ({threads} CPU thread{'s' * (threads > 1)})",
              markup=False, highlight=False)

    def report(metrics: dict) -> None:
        if not args.quiet:
            out.print(f"epoch {metrics['epoch']:>3}  loss {metrics['train_loss']:.4f}  "
                      f"train {metrics['train_acc']:.4f}  val {metrics['val_acc']:.4f}  "
                      f"lr {metrics['lr']:.4g}  {metrics['images_per_s']:.0f} img/s")

    if args.quiet:
        result = train(model, data, _config(args), callback=report, run_dir=run_dir, resume=bool(args.resume))
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=out, transient=True) as progress:
            task = progress.add_task("train", total=None)

            def on_step(step: int, steps: int) -> None:
                progress.update(task, completed=step, total=steps)

            result = train(model, data, _config(args), callback=report, run_dir=run_dir,
                           resume=bool(args.resume), on_step=on_step)
    save_atomic(model.state_dict(), run_dir / "weights.pt")
    (run_dir / "metrics.json").write_text(json.dumps(result.as_dict(), indent=2))
    if result.status == "nan":
        out.print(f"[red]stopped: the loss became NaN at epoch {result.final['epoch']}[/red] (try a lower --lr)")
        return 1
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
    print(json.dumps({"arch": arch.name, "data": data.name, "split": args.split, "loss": loss, "accuracy": acc}))
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
    parser.add_argument("--seed", type=int, default=0)
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
