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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from nas.data import Dataset, Split, batches
from nas.dsl.errors import SpecError

CHECKPOINT = "checkpoint.pt"


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
        if not self.lr > 0:
            raise SpecError(f"learning rate must be > 0, got {self.lr}", "--lr")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.drop_path < 1:
            raise SpecError("label smoothing and drop-path rates must be in [0, 1)")


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


def load_weights(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """A state_dict file, loaded safely (`weights_only=True`); with `model`, loaded into it."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise SpecError("no such weights file", str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as err:
        raise SpecError("not a weights file, or one that is unsafe to load", str(path),
                        f"expected a state_dict saved with torch.save ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise SpecError("not a state_dict", str(path), "expected a mapping of parameter names to tensors")
    if model is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            detail = " ".join(line.strip() for line in str(err).splitlines()[1:2])[:160]
            raise SpecError(f"weights do not fit the architecture: {detail}", str(path),
                            "were they trained with this architecture and dataset?") from None
    return state


def load_checkpoint(run_dir: Path) -> dict:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise SpecError("no checkpoint to resume from", str(path), "start without --resume")
    return torch.load(path, map_location="cpu", weights_only=True)


def train(model: nn.Module, data: Dataset, config: TrainConfig | None = None,
          callback: Callable[[dict], object] | None = None, run_dir: str | os.PathLike | None = None,
          resume: bool = False, on_step: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train `model` on `data.train`, validate each epoch on `data.val`, test once at the end.

    `callback(metrics)` runs after every epoch; returning False stops the run (status "stopped").
    `on_step(step, steps_per_epoch)` is for progress bars.
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
    folder = Path(run_dir) if run_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    if resume:
        if folder is None:
            raise SpecError("resuming needs a run folder")
        state = load_checkpoint(folder)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = [json.loads(h) for h in state["history"]]
        start_epoch = state["epoch"]
        _restore_rng(state["rng"], generator)
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
            save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                          "history": [json.dumps(h) for h in history], "rng": _rng_state(generator)},
                         folder / CHECKPOINT)
        if callback is not None and callback(metrics) is False:
            status = "stopped"
            break
    result = TrainResult(status, history)
    if status == "ok":
        result.test_loss, result.test_acc = evaluate(model, *data.test, config.eval_batch_size, device)
    return result
