"""One training loop for search candidates and for retraining discovered architectures.

SGD (Nesterov momentum) or AdamW, per-step cosine schedule with linear warm-up, label smoothing, drop-path,
gradient clipping, AMP and channels-last on CUDA. Metrics go to a per-epoch callback (a search hands them to
Ray Tune); a NaN loss ends the run with status "nan" instead of an exception. With a run folder, every epoch
is checkpointed (model, optimizer, scheduler, every RNG state) so `resume=True` continues bit-exactly.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from nas.data import Dataset, Split, batches
from nas.dsl.errors import SpecError
from nas.runs import RunDir

CHECKPOINT = "checkpoint.pt"
LIMITS = {"epochs": 1_000_000, "batch_size": 1_000_000, "eval_batch_size": 1_000_000}
MAX_RATE = 1e6  # learning rate, weight decay, warm-up: far above any use, far below float32 overflow


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    drop_path: float = 0.0
    grad_clip: float | None = 5.0
    augment: bool = False
    flip: bool = True
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 512

    def check(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise SpecError(f"unknown optimizer '{self.optimizer}'", "--optimizer", "use sgd or adamw")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise SpecError(f"{name} must be a positive integer, got {getattr(self, name)!r}",
                                f"--{name.replace('_', '-')}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) > LIMITS[name]:
                raise SpecError(f"{name} must be at most {LIMITS[name]}, got {getattr(self, name)}",
                                f"--{name.replace('_', '-')}")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**32):
            raise SpecError(f"seed must be an integer from 0 to 2^32-1, got {self.seed!r}", "--seed")
        if not 0 < self.lr <= MAX_RATE:
            raise SpecError(f"learning rate must be in (0, {MAX_RATE:g}], got {self.lr}", "--lr")
        for name, flag in (("weight_decay", "--weight-decay"), ("warmup_epochs", "--warmup"),
                           ("momentum", "momentum")):
            if not 0 <= getattr(self, name) <= MAX_RATE:
                raise SpecError(f"{name.replace('_', ' ')} must be in [0, {MAX_RATE:g}], got {getattr(self, name)}",
                                flag)
        if not 0 <= self.label_smoothing < 1:
            raise SpecError(f"label smoothing must be in [0, 1), got {self.label_smoothing}", "--label-smoothing")
        if not 0 <= self.drop_path < 1:
            raise SpecError(f"drop-path rate must be in [0, 1), got {self.drop_path}", "--drop-path")


@dataclass
class TrainResult:
    status: str  # "ok", "nan" or "stopped" (the callback asked to stop)
    history: list[dict] = field(default_factory=list)
    test_loss: float | None = None
    test_acc: float | None = None

    @property
    def final(self) -> dict:
        return self.history[-1] if self.history else {}

    def as_dict(self) -> dict:
        return asdict(self)


def pick_device(device: str | None = "auto") -> torch.device:
    from nas.cost.latency import resolve_device

    return resolve_device(device)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which a scheduler or `taskset` narrows), the
    default of `--threads`: torch's own default counts every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this platform (macOS, Windows)
        return os.cpu_count() or 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_drop_path(model: nn.Module, rate: float) -> None:
    """Stochastic depth. Every module with a `drop_path_rate` attribute (the ops' residual blocks) is a block;
    the i-th of n, in `model.modules()` order, gets `rate · (i+1)/n`, so deeper blocks drop more often."""
    blocks = [m for m in model.modules() if hasattr(m, "drop_path_rate")]
    for i, block in enumerate(blocks):
        block.drop_path_rate = rate * (i + 1) / len(blocks)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512,
             device: str | torch.device = "cpu") -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on images `x` and labels `y` (`evaluate(model, *data.test)`)."""
    if len(y) == 0:
        return float("nan"), float("nan")
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for xb, yb in batches(Split(x, y), batch_size):
        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        logits = model(xb).float()
        loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train(was_training)
    return loss_sum / len(y), correct / len(y)


def check_input(model: nn.Module, data: Dataset, device: torch.device) -> None:
    """A dry forward pass, so an input the network cannot take fails before training, with a clear message."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(data.train.x[:2].to(device))
    except RuntimeError as err:
        raise SpecError(f"the architecture cannot take {data.channels}×{data.size}×{data.size} inputs: "
                        f"{str(err).splitlines()[0]}", "--size", "change --size or the architecture") from None
    finally:
        model.train()
    if out.shape[-1] != data.classes:
        raise SpecError(f"the network outputs {out.shape[-1]} classes but {data.name} has {data.classes}",
                        "--data", "set the architecture's classes (arch.with_classes)")


def _schedule(config: TrainConfig, steps_per_epoch: int):
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on norms and biases: the usual practice for these networks.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.momentum > 0)


def _rng_state(generator: torch.Generator) -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _restore_rng(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj, path: str | os.PathLike) -> None:
    """torch.save through a temporary file and a rename, so a kill mid-write leaves the previous file intact."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _safe_load(path: Path, what: str):
    """torch.load(weights_only=True) of a regular, non-empty file; a damaged or hostile one is a SpecError."""
    import pickle

    if not path.is_file():  # also refuses pipes and devices, which would block or never end
        raise SpecError(f"no such {what} file" if not path.exists() else f"the {what} path is not a regular file",
                        str(path))
    if path.stat().st_size == 0:
        raise SpecError(f"the {what} file is empty", str(path), "was its writer killed? use an earlier one")
    try:
        with warnings.catch_warnings():  # torch's notes on odd files would come before our one-line error
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        raise SpecError(f"not a {what} file, or a damaged or unsafe one", str(path),
                        f"expected a file torch.save wrote ({type(err).__name__})") from None


def check_state(state, model: nn.Module, where: str) -> None:
    """A state_dict that fits `model`, key for key and shape for shape, before anything is loaded."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise SpecError("not a state_dict", where, "expected a mapping of parameter names to tensors")
    expected = model.state_dict()
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    if missing or unexpected:
        detail = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise SpecError(f"weights do not fit the architecture ({len(missing)} missing, {len(unexpected)} "
                        f"unexpected: {detail})", where, "were they trained with this architecture and dataset?")
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise SpecError(f"weights do not fit the architecture: {key} is {tuple(state[key].shape)}, the "
                            f"architecture needs {tuple(tensor.shape)}", where,
                            "were they trained with this architecture and dataset?")


def finite_state(model: nn.Module) -> bool:
    """True when every floating-point parameter and buffer is finite (no NaN, no inf)."""
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def load_weights(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """A state_dict file, loaded safely (`weights_only=True`); with `model`, checked against it and loaded."""
    path = Path(path)
    state = _safe_load(path, "weights")
    if not isinstance(state, dict):
        raise SpecError("not a state_dict", str(path), "expected a mapping of parameter names to tensors")
    if model is not None:
        check_state(state, model, str(path))
        model.load_state_dict(state)
    return state


CHECKPOINT_KEYS = {"model": dict, "optimizer": dict, "scheduler": dict, "epoch": int, "history": list, "rng": dict}


def load_checkpoint(run_dir: Path, model: nn.Module | None = None) -> dict:
    """The run's checkpoint, its keys, types and (with `model`) weight shapes checked before any is used."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise SpecError("no checkpoint to resume from", str(path), "start without --resume")
    state = _safe_load(path, "checkpoint")
    where = str(path)
    if not isinstance(state, dict):
        raise SpecError("not a checkpoint (expected a mapping)", where)
    for key, kind in CHECKPOINT_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise SpecError(f"damaged checkpoint: '{key}' is missing or not a {kind.__name__}", where)
    if state["epoch"] < 0 or len(state["history"]) != state["epoch"] or not all(
            isinstance(h, str) for h in state["history"]):
        raise SpecError("damaged checkpoint: its epoch and history disagree", where)
    if model is not None:
        check_state(state["model"], model, where)
    return state


def _restore(state: dict, model, optimizer, scheduler, generator, where: str) -> list[dict]:
    """Load a checked checkpoint; what the checks cannot see (optimizer groups, RNG layout) fails here."""
    try:
        history = [json.loads(h) for h in state["history"]]
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _restore_rng(state["rng"], generator)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:
        raise SpecError(f"the checkpoint does not fit this run ({type(err).__name__}: "
                        f"{str(err).splitlines()[0][:120]})", where, "start a new run") from None
    if not all(isinstance(h, dict) for h in history):
        raise SpecError("damaged checkpoint: bad history", where)
    return history


def train(model: nn.Module, data: Dataset, config: TrainConfig | None = None,
          callback: Callable[[dict], object] | None = None, run_dir: "str | os.PathLike | RunDir | None" = None,
          resume: bool = False, on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train `model` on `data.train`, validate each epoch on `data.val`, test once at the end.

    `callback(metrics)` runs after every epoch; returning False stops the run (status "stopped").
    `on_step(step, steps_per_epoch)` is for progress bars. `run_dir`, a `nas.runs.RunDir` (or a plain folder),
    receives a checkpoint after every epoch.
    """
    config = config or TrainConfig()
    config.check()
    device = pick_device(config.device)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    check_input(model, data, device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    set_drop_path(model, config.drop_path)
    optimizer = _optimizer(model, config)
    steps = math.ceil(len(data.train) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, steps))
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history: list[dict] = []
    start_epoch = 0
    run = run_dir if isinstance(run_dir, RunDir) else None
    folder = run.path if run is not None else Path(run_dir) if run_dir is not None else None
    if folder is not None and run is None:
        folder.mkdir(parents=True, exist_ok=True)
    if resume:
        if folder is None:
            raise SpecError("resuming needs a run folder")
        state = load_checkpoint(folder, model)
        history = _restore(state, model, optimizer, scheduler, generator, str(folder / CHECKPOINT))
        start_epoch = state["epoch"]
    status = "ok"
    for epoch in range(start_epoch, config.epochs):
        model.train()
        began = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for step, (x, y) in enumerate(batches(data.train, config.batch_size, shuffle=True, generator=generator,
                                              augment=config.augment, flip=config.flip)):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16 if not cuda else torch.float16, enabled=cuda):
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if on_step:
                on_step(step + 1, steps)
        train_loss = loss_sum.item() / max(1, seen)
        seconds = time.perf_counter() - began
        if not math.isfinite(train_loss):
            status = "nan"
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "status": "nan"})
            break
        val_loss, val_acc = evaluate(model, *data.val, config.eval_batch_size, device)
        metrics = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": correct.item() / max(1, seen),
                   "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": seconds, "images_per_s": seen / seconds if seconds else float("nan")}
        history.append(metrics)
        if folder is not None:
            checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                          "history": [json.dumps(h) for h in history], "rng": _rng_state(generator)}
            if run is not None:
                run.save_torch(CHECKPOINT, checkpoint)
            else:
                save_atomic(checkpoint, folder / CHECKPOINT)
        if callback is not None and callback(metrics) is False:
            status = "stopped"
            break
    result = TrainResult(status, history)
    if status == "ok":
        result.test_loss, result.test_acc = evaluate(model, *data.test, config.eval_batch_size, device)
    return result
