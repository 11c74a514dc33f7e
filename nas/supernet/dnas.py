"""The bi-level DNAS / DARTS loop: weights on one part of the training split, θ on the other, alternating.

Each step is one weight step (SGD on a batch of the weights part, CE of a sampled architecture) followed,
after the warm-up epochs, by one θ step (Adam on a batch of the θ part). The θ loss is

    fbnet:  CE · α · (log E[cost])^β      (FBNet; α = 0 turns the cost factor off: plain CE)
    darts:  CE                            (DARTS, first order)

with E[cost] the expected cost of the current distribution (`nas.supernet.expected`; FLOPs, params, or
latency in microseconds, so the logarithm stays positive). The Gumbel-softmax temperature starts at
`temperature` and is multiplied by `temperature_decay` every epoch. FBNet alternates whole epochs; stepping
both every batch (as DARTS does) keeps the θ part fresh with the same number of updates of each.

Every epoch is checkpointed through the run folder (weights, θ, both optimizers, the schedule, temperature,
history, every RNG), so a killed search resumes after its last finished epoch with the same θ it would
have had. Per-epoch θ, expected and derived cost and accuracies go to `history.json`.

`run_epoch` and `train_step` are the loop of one worker and of each of N data-parallel workers
(`nas.supernet.ddp`): given a `sync`, a worker takes its shard of every batch and averages the gradients.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from nas.data import Dataset, Split, batches
from nas.dsl.errors import SpecError
from nas.dsl.nodes import Space
from nas.supernet.derive import argmax_assignment
from nas.supernet.expected import ExpectedCost
from nas.supernet.mixed import Sample
from nas.supernet.supernet import Supernet, fixed_sample
from nas.train import TrainConfig, _optimizer, _restore_rng, _rng_state, _schedule, pick_device, seed_everything

CHECKPOINT = "supernet.pt"
HISTORY = "history.json"


@dataclass
class DnasConfig:
    mode: str = "mixture"  # mixture | single_path | softmax
    cells: str = "slots"  # slots | edges (cell spaces)
    loss: str = "fbnet"  # fbnet | darts
    alpha: float = 0.2
    beta: float = 0.6
    cost: str = "flops"  # flops | params | latency
    lut: str | None = None  # with cost latency: a table written by `nas lut` instead of timing ops here
    epochs: int = 10
    warmup: int = 2
    batch_size: int = 64
    split: float = 0.8  # the weights' share of the training split
    temperature: float = 5.0
    temperature_decay: float = 0.956
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    theta_lr: float = 0.01
    theta_weight_decay: float = 5e-4
    theta_betas: tuple = (0.9, 0.999)
    grad_clip: float | None = 5.0
    affine: bool = True
    samples: int = 5
    seed: int = 0
    device: str = "auto"

    @property
    def uses_cost(self) -> bool:
        return self.loss == "fbnet" and self.alpha > 0


@dataclass
class SearchResult:
    supernet: Supernet
    history: list[dict] = field(default_factory=list)
    expected: ExpectedCost | None = None


def make_supernet(space: Space, config: DnasConfig) -> tuple[Supernet, ExpectedCost | None]:
    """The supernet and its cost model (None where the expected cost is not available and not needed)."""
    net = Supernet(space, config.mode, config.cells, config.affine, seed=config.seed)
    if config.uses_cost and net.parametrization != "slots":
        raise SpecError("the cost-aware loss needs the slots parametrization (θ over the space's choices)",
                        hint="use cells: slots, or loss: darts")
    table = _latency_table(space, config)  # a table that does not fit is refused even when alpha is 0
    try:
        return net, ExpectedCost(space, config.cost, table=table)
    except SpecError:
        if config.uses_cost:
            raise
        return net, None


def _latency_table(space: Space, config: DnasConfig):
    """With cost latency: the recipe's `lut:` table (refused if measured on another machine or space), else
    the ops timed here on the search device. None for FLOPs and params (ExpectedCost counts those)."""
    if config.cost != "latency":
        return None
    from nas.cost.latency import resolve_device
    from nas.cost.lut import CostTable
    from nas.cost.lut_file import LatencyTable

    if config.lut is None:
        return CostTable(space, latency_device=str(resolve_device(config.device)))
    table = LatencyTable.load(config.lut)
    table.check_machine()
    return table.cost_table(space)


def split_train(data: Dataset, share: float, seed: int) -> tuple[Split, Split]:
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed))
    cut = max(1, min(len(order) - 1, int(round(share * len(order)))))
    x, y = data.train.x, data.train.y
    return Split(x[order[:cut]], y[order[:cut]]), Split(x[order[cut:]], y[order[cut:]])


def cost_scale(metric: str) -> float:
    return 1000.0 if metric == "latency" else 1.0  # latency tables are in ms; the loss uses µs


def theta_loss(ce: torch.Tensor, cost: torch.Tensor | None, config: DnasConfig) -> torch.Tensor:
    """CE · α · (log cost)^β (FBNet), or CE (DARTS, or α = 0)."""
    if cost is None or not config.uses_cost:
        return ce
    return ce * config.alpha * torch.log(cost * cost_scale(config.cost)).pow(config.beta)


@dataclass
class Loop:
    """Everything one epoch of the bi-level loop reads and updates: the same on 1 worker and on each of N."""

    config: DnasConfig
    net: Supernet
    expected: ExpectedCost | None
    device: torch.device
    w_part: Split
    a_part: Split
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    w_gen: torch.Generator
    a_gen: torch.Generator
    noise: torch.Generator | None = None  # the Gumbel noise's own stream (N workers); None: torch's global RNG
    history: list[dict] = field(default_factory=list)
    start: int = 0

    @property
    def steps(self) -> int:
        return math.ceil(len(self.w_part) / self.config.batch_size)

    def stateful(self) -> dict:
        return {"weights": self.net.net, "theta": self.net.arch, "w_opt": self.w_opt, "a_opt": self.a_opt,
                "scheduler": self.scheduler}

    def state(self, epoch: int) -> dict:
        """The checkpoint after `epoch` finished epochs."""
        state = {key: obj.state_dict() for key, obj in self.stateful().items()} | {
            "epoch": epoch, "temperature": self.net.temperature, "history": [json.dumps(h) for h in self.history],
            "rng": _rng_state(self.w_gen), "theta_generator": self.a_gen.get_state()}
        if self.noise is not None:
            state["noise_generator"] = self.noise.get_state()
        return state

    def restore(self, state: dict) -> None:
        for key, obj in self.stateful().items():
            obj.load_state_dict(state[key])
        self.history = [json.loads(h) for h in state["history"]]
        self.start = state["epoch"]
        _restore_rng(state["rng"], self.w_gen)
        self.a_gen.set_state(state["theta_generator"])
        if self.noise is not None and "noise_generator" in state:
            self.noise.set_state(state["noise_generator"])


def make_loop(space: Space, data: Dataset, config: DnasConfig, device: torch.device,
              noise: torch.Generator | None = None) -> Loop:
    """Seed, build the supernet, split the data, make the optimizers (in this order: it fixes the RNG streams)."""
    seed_everything(config.seed)
    w_gen = torch.Generator().manual_seed(config.seed)
    a_gen = torch.Generator().manual_seed(config.seed + 1)
    net, expected = make_supernet(space, config)
    net.to(device)
    w_part, a_part = split_train(data, config.split, config.seed)
    steps = math.ceil(len(w_part) / config.batch_size)
    schedule = TrainConfig(epochs=config.epochs, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, warmup_epochs=0.0)
    w_opt = _optimizer(net.net, schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(w_opt, _schedule(schedule, steps))
    a_opt = torch.optim.Adam(net.arch.parameters(), lr=config.theta_lr, betas=tuple(config.theta_betas),
                             weight_decay=config.theta_weight_decay)
    return Loop(config, net, expected, device, w_part, a_part, w_opt, a_opt, scheduler, w_gen, a_gen, noise)


def search(space: Space, data: Dataset, config: DnasConfig, run=None, resume: bool = False,
           on_step: Callable[[int, int, int], None] | None = None,
           on_epoch: Callable[[dict], None] | None = None) -> SearchResult:
    """Run the bi-level search on this process; with `run` (a `nas.runs.RunDir`), checkpoint each epoch and
    allow `resume`. (`resources: {workers: N}` runs the same epochs on N workers: `nas.supernet.ddp`.)"""
    state = load_search_state(run) if resume else None  # a missing checkpoint fails before the supernet is built
    loop = make_loop(space, data, config, pick_device(config.device))
    if state is not None:
        loop.restore(state)
    for epoch in range(loop.start, config.epochs):
        sums = run_epoch(loop, epoch, on_step)
        record = epoch_record(loop, data, epoch, sums)
        loop.history.append(record)
        if run is not None:
            run.save_torch(CHECKPOINT, loop.state(epoch + 1))
            run.write_json(HISTORY, loop.history)
        if on_epoch:
            on_epoch(record)
    return SearchResult(loop.net, loop.history, loop.expected)


def run_epoch(loop: Loop, epoch: int, on_step: Callable[[int, int, int], None] | None = None,
              sync=None) -> dict:
    """One epoch: weight steps on the weights part, each followed (after the warm-up) by a θ step on the θ
    part. With `sync` (`nas.supernet.allreduce.WorkerSync`) this process is one of N workers: it takes its
    shard of every batch and the gradients are averaged over the workers before each optimizer step."""
    config, net = loop.config, loop.net
    net.temperature = config.temperature * config.temperature_decay ** epoch
    searching = epoch >= config.warmup
    net.train()
    began = time.perf_counter()
    sums = {"train_loss": 0.0, "train_correct": 0, "theta_loss": 0.0, "theta_correct": 0, "seen": 0, "a_seen": 0}
    a_batches = iter(())
    for step, batch in enumerate(batches(loop.w_part, config.batch_size, shuffle=True, generator=loop.w_gen)):
        theta_batch = None
        if searching:
            try:
                theta_batch = next(a_batches)
            except StopIteration:
                a_batches = iter(batches(loop.a_part, config.batch_size, shuffle=True, generator=loop.a_gen))
                theta_batch = next(a_batches)
        train_step(loop, batch, theta_batch, sums, sync)
        if on_step:
            on_step(epoch, step + 1, loop.steps)
    sums["seconds"] = time.perf_counter() - began
    sums["searching"] = searching
    if sync is not None:
        sync.sums(sums)
        sync.buffers(net)
    if not math.isfinite(sums["train_loss"]):  # every worker sees the same sums, so all of them stop
        raise SpecError(f"the search diverged at epoch {epoch + 1} (loss {sums['train_loss'] / max(1, sums['seen'])})",
                        hint="lower strategy.lr or raise strategy.warmup")
    return sums


_ce = nn.CrossEntropyLoss()


def train_step(loop: Loop, batch: tuple, theta_batch: tuple | None, sums: dict, sync=None) -> None:
    """One weight step and, given `theta_batch`, one θ step: the per-step code of 1 worker and of N.

    On N workers each takes its shard of both (global) batches; the Gumbel noise comes from `loop.noise`,
    the same stream on every worker, so all of them run the same sampled architecture and the averaged
    gradient is that of 1 worker on the whole batch."""
    config, net = loop.config, loop.net
    count = _backward(loop, batch, loop.w_opt, sums, ("train_loss", "train_correct", "seen"), sync)
    if sync is not None:
        sync.gradients(net.weights(), count)
    if config.grad_clip:
        nn.utils.clip_grad_norm_(net.weights(), config.grad_clip)
    loop.w_opt.step()
    loop.scheduler.step()
    if theta_batch is None:
        return

    def objective(ce: torch.Tensor) -> torch.Tensor:
        return theta_loss(ce, loop.expected(net.arch.probs()) if config.uses_cost else None, config)

    count = _backward(loop, theta_batch, loop.a_opt, sums, ("theta_loss", "theta_correct", "a_seen"), sync, objective)
    if sync is not None:
        sync.gradients(list(net.arch.parameters()), count)
    loop.a_opt.step()


def _backward(loop: Loop, batch: tuple, optimizer: torch.optim.Optimizer, sums: dict, keys: tuple[str, str, str],
              sync, objective: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Clear `optimizer`'s gradients and backpropagate the loss of this worker's shard of `batch` through one
    sampled architecture; add the loss, hits and count to `sums`; return the shard's size."""
    net = loop.net
    x, y = _shard(batch, sync)
    sample = net.draw(loop.noise)  # drawn even for an empty shard: the noise streams of the workers stay together
    optimizer.zero_grad(set_to_none=True)
    if not len(y):  # a last batch smaller than the number of workers: this one adds nothing
        return 0
    x, y = x.to(loop.device), y.to(loop.device)
    logits = net(x, sample)
    loss = _ce(logits, y)
    if objective is not None:
        loss = objective(loss)
    loss.backward()
    loss_key, correct_key, seen_key = keys
    sums[loss_key] += loss.item() * len(y)
    sums[correct_key] += int((logits.argmax(1) == y).sum())
    sums[seen_key] += len(y)
    return len(y)


def _shard(batch: tuple, sync) -> tuple:
    """This worker's contiguous share of a global batch (the whole batch on 1 worker)."""
    if sync is None or sync.world == 1:
        return batch
    return tuple(t.tensor_split(sync.world)[sync.rank] for t in batch)


def load_search_state(run) -> dict:
    if run is None:
        raise SpecError("resuming needs a run folder")
    path = run.path / CHECKPOINT
    if not path.is_file():
        raise SpecError("no supernet checkpoint to resume from", str(path), "start the search without --resume")
    return torch.load(path, map_location="cpu", weights_only=True)


@torch.no_grad()
def accuracy(net: Supernet, split: Split, sample: Sample, batch_size: int = 256) -> float:
    """Accuracy of one architecture inside the supernet, its norms on batch statistics: the running
    statistics were gathered under mixed or other sampled paths and do not describe this one."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.track_running_stats = False  # batch statistics, and leave the running ones untouched
    was_training = net.training
    net.train()
    correct = 0
    device = next(net.parameters()).device
    try:
        for x, y in batches(split, batch_size):
            correct += int((net(x.to(device), sample).argmax(1) == y.to(device)).sum())
    finally:
        for m in norms:
            m.track_running_stats = True
        net.train(was_training)
    return correct / max(1, len(split))


def epoch_record(loop: Loop, data: Dataset, epoch: int, sums: dict) -> dict:
    net, expected, config = loop.net, loop.expected, loop.config
    assignment = argmax_assignment(net)
    return {
        "epoch": epoch + 1, "phase": "search" if sums["searching"] else "warmup", "temperature": net.temperature,
        "train_loss": sums["train_loss"] / max(1, sums["seen"]), "train_acc": sums["train_correct"] / max(1, sums["seen"]),
        "theta_loss": sums["theta_loss"] / sums["a_seen"] if sums["a_seen"] else None,
        "theta_acc": sums["theta_correct"] / sums["a_seen"] if sums["a_seen"] else None,
        "val_acc": accuracy(net, data.val, fixed_sample(net.space, assignment)),
        "expected_cost": float(expected(net.arch.probs()).detach()) if expected is not None and net.parametrization == "slots"
        else None,
        "cost_metric": config.cost,
        "derived_cost": expected.exact(assignment) if expected is not None else None,
        "derived": assignment, "theta": net.arch.as_json(), "seconds": sums["seconds"],
    }
