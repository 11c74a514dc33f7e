"""`strategy: dnas` in a recipe: its options (validated here, the recipe schema delegates them) and
`run_dnas`, which searches, derives, optionally retrains, and writes the run folder:

    supernet.pt        checkpoint of the last finished epoch (weights, θ, optimizers, RNG) for --resume
    history.json       per epoch: θ, temperature, expected and derived cost, losses and accuracies
    best.arch.yaml     the argmax architecture (DARTS: top-2 edges per node), with its params and FLOPs
    samples/           K architectures drawn from the learned distribution, each an arch file
    best/              arch.yaml (= best.arch.yaml) and weights.pt, the retrained weights when `retrain:` is
                       given (from the supernet's weights with `inherit: true`): what `nas export RUN_DIR` reads
    summary.json       what the summary prints
"""
from __future__ import annotations

import math
import time
from dataclasses import fields

import torch

from nas.dsl.errors import SpecError
from nas.recipe import Option
from nas.supernet.dnas import CHECKPOINT, DnasConfig, search
from nas.supernet.expected import METRICS, cost_extremes

_finite = lambda v: math.isfinite(v)  # noqa: E731


class DnasStrategy:
    """The options of `strategy: dnas` (FBNet's defaults)."""

    max_objectives = None  # accuracy is what CE trains; cost enters through alpha/beta/cost
    OPTIONS = {
        "mode": Option("mixture", str, choices=("mixture", "single_path", "softmax")),
        "cells": Option("slots", str, choices=("slots", "edges")),
        "loss": Option("fbnet", str, choices=("fbnet", "darts")),
        "alpha": Option(0.2, float, "α ≥ 0 (FBNet: 0.2; 0 turns the cost factor off)",
                        lambda v: _finite(v) and v >= 0),
        "beta": Option(0.6, float, "β > 0 (FBNet: 0.6)", lambda v: _finite(v) and v > 0),
        "cost": Option("flops", str, choices=METRICS),
        "lut": Option(None, str, "a latency table file written by nas lut (with cost: latency)"),
        "epochs": Option(10, int, "a positive number of epochs", lambda v: v >= 1),
        "warmup": Option(2, int, "weights-only epochs before θ is searched (≥ 0)", lambda v: v >= 0),
        "batch_size": Option(64, int, "a positive batch size", lambda v: v >= 1),
        "split": Option(0.8, float, "the weights' share of the training split, in (0, 1)", lambda v: 0 < v < 1),
        "temperature": Option(5.0, float, "the starting Gumbel-softmax temperature (> 0)",
                              lambda v: _finite(v) and v > 0),
        "temperature_decay": Option(0.956, float, "per-epoch factor in (0, 1]", lambda v: 0 < v <= 1),
        "lr": Option(0.1, float, "weights' SGD learning rate (> 0)", lambda v: _finite(v) and v > 0),
        "momentum": Option(0.9, float, "in [0, 1)", lambda v: 0 <= v < 1),
        "weight_decay": Option(1e-4, float, "≥ 0", lambda v: _finite(v) and v >= 0),
        "theta_lr": Option(0.01, float, "θ's Adam learning rate (> 0)", lambda v: _finite(v) and v > 0),
        "theta_weight_decay": Option(5e-4, float, "≥ 0", lambda v: _finite(v) and v >= 0),
        "theta_betas": Option([0.9, 0.999], list, "two numbers in [0, 1), e.g. [0.5, 0.999]",
                              lambda v: len(v) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in v)),
        "grad_clip": Option(5.0, float, "> 0", lambda v: _finite(v) and v > 0),
        "affine": Option(True, bool),
        "samples": Option(5, int, "architectures to draw from the learned distribution (≥ 0)", lambda v: v >= 0),
    }


STRATEGY = DnasStrategy()


def config_from_recipe(recipe) -> DnasConfig:
    options = dict(recipe.strategy.options)
    if options["warmup"] >= options["epochs"]:
        raise SpecError(f"warmup ({options['warmup']}) must be shorter than epochs ({options['epochs']})",
                        recipe.where("strategy", "warmup"), "θ is only searched after the warm-up epochs")
    if options["loss"] == "fbnet" and options["alpha"] > 0 and options["cells"] == "edges":
        raise SpecError("the cost-aware loss needs the slots parametrization (θ over the space's choices)",
                        recipe.where("strategy", "cells"), "use cells: slots, or loss: darts, or alpha: 0")
    if options["lut"] is not None:
        if options["cost"] != "latency":
            raise SpecError("lut: is a latency table; it only prices cost: latency", recipe.where("strategy", "lut"),
                            "add cost: latency, or remove lut:")
        from nas.cost.lut_file import LatencyTable
        from nas.recipe import _space_path

        options["lut"] = _space_path(options["lut"], recipe.file)  # beside the recipe, else as written
        LatencyTable.load(options["lut"]).check_machine()  # fail before the data loads; the space is checked later
    known = {f.name for f in fields(DnasConfig)}
    options["theta_betas"] = tuple(options["theta_betas"])
    return DnasConfig(**{k: v for k, v in options.items() if k in known}, seed=recipe.seed,
                      device=recipe.train.get("device", "auto"))


def run_dnas(recipe, run, *, quiet: bool = False, address: str | None = None, data=None, on_epoch=None) -> dict:
    """Search, derive, retrain (when asked) and summarize into the run folder; returns the summary.
    `resources: {workers: N > 1}` trains the supernet on N Ray Train workers (at `address`, else ray.address,
    else a local Ray). `data`: the recipe's dataset when the caller has it loaded already (a sweep's members
    share one); `on_epoch` gets each epoch's history record (one worker)."""
    from nas.data import load_dataset
    from nas.supernet.derive import argmax_assignment, sample_assignments

    config = config_from_recipe(recipe)
    if data is None:
        data = load_dataset(recipe.data.name, size=recipe.data.size, root=recipe.data.root,
                            val_fraction=recipe.data.val_fraction, seed=recipe.data.seed,
                            channels=recipe.data.channels)
    space = recipe.load_space(data)
    if not space.choices():
        raise SpecError(f"space '{space.name}' has no choices: there is nothing to search", recipe.where("space"),
                        "use a search space (e.g. fbnet, darts, mobilenetv3)")
    began = time.perf_counter()
    if recipe.resources.workers > 1:  # data-parallel on Ray Train
        from nas.supernet.ddp import search_on_workers

        result = search_on_workers(recipe, space, data, config, run, address=address, quiet=quiet)
    else:
        resume = (run.path / CHECKPOINT).is_file()
        with _progress(quiet, config.epochs) as progress:
            result = search(space, data, config, run=run, resume=resume, on_step=progress, on_epoch=on_epoch)
    net, expected = result.supernet, result.expected
    best = argmax_assignment(net)
    summary = {"recipe": recipe.name, "strategy": "dnas", "mode": config.mode, "loss": config.loss,
               "alpha": config.alpha, "beta": config.beta, "cost": config.cost, "epochs": config.epochs,
               "search_seconds": time.perf_counter() - began, "space": space.name,
               "input": [space.doc["input"]["channels"], space.doc["input"]["size"], space.doc["input"]["size"]],
               "classes": space.doc["classes"]}
    summary["best"] = _write_arch(run, "best.arch.yaml", space, best, expected, "argmax of the learned θ")
    run.write_text("best/arch.yaml", run.file("best.arch.yaml").read_text())  # what `nas export RUN_DIR` reads
    generator = torch.Generator().manual_seed(recipe.seed)
    summary["samples"] = [_write_arch(run, f"samples/sample_{i}.arch.yaml", space, a, expected,
                                      f"sample {i} of the learned distribution")
                          for i, a in enumerate(sample_assignments(net, config.samples, generator))]
    if expected is not None:
        low, high, exact = cost_extremes(expected)
        summary["space_flops"] = {"smallest": low, "largest": high, "exact": exact} if config.cost == "flops" else None
        summary[f"space_{config.cost}"] = {"smallest": low, "largest": high, "exact": exact}
    summary["history"] = "history.json"
    summary["final_epoch"] = result.history[-1] if result.history else None
    if recipe.retrain:
        summary["retrain"] = _retrain(recipe, run, space, best, net, data, quiet)
    run.write_json("summary.json", summary)
    return summary


def _write_arch(run, rel: str, space, assignment: dict, expected, why: str) -> dict:
    from nas.cost import count_arch
    from nas.dsl import dumps

    arch = space.resolve(assignment)
    if expected is not None:
        cost = expected.table.estimate(assignment)
    else:
        cost = count_arch(arch).total
    header = f"{arch.name}: {why}; {cost.params:,} params, {cost.flops / 1e6:.2f}M FLOPs (multiply-adds)"
    run.write_text(rel, dumps(arch, header=header))
    return {"file": rel, "params": int(cost.params), "flops": float(cost.flops), "assignment": dict(assignment)}


def _retrain(recipe, run, space, assignment: dict, net, data, quiet: bool) -> dict:
    """Train the derived architecture with `nas.train.train` (from scratch, or from the supernet's weights)."""
    from nas.builder import build
    from nas.train import train

    arch = space.resolve(assignment)
    model = build(arch, seed=recipe.seed)
    inherit = bool(recipe.retrain.get("inherit"))
    if inherit:
        model.load_state_dict(net.inherited_state(assignment))
    config = recipe.train_config(epochs=recipe.retrain["epochs"])
    with _progress(quiet, config.epochs, "retraining") as progress:
        result = train(model, data, config, run_dir=run.file("retrain/.keep").parent,
                       on_step=lambda step, steps: progress(None, step, steps))
    run.save_torch("best/weights.pt", model.state_dict())
    return {"epochs": config.epochs, "inherit": inherit, "status": result.status, "test_acc": result.test_acc,
            "test_loss": result.test_loss, "val_acc": result.final.get("val_acc"), "weights": "best/weights.pt"}


class _progress:
    """A rich progress bar over the steps of every epoch (nothing when quiet); called as on_step."""

    def __init__(self, quiet: bool, epochs: int, label: str = "searching"):
        self.quiet, self.epochs, self.label = quiet, epochs, label
        self.bar = self.task = None
        self.epoch = -1

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), transient=True)
            self.bar.__enter__()
        return self

    def __call__(self, epoch, step: int, steps: int) -> None:
        if self.bar is None:
            return
        if step == 1:
            self.epoch += 1
            if self.task is not None:
                self.bar.remove_task(self.task)
            label = f"{self.label} epoch {(epoch if epoch is not None else self.epoch) + 1}/{self.epochs}"
            self.task = self.bar.add_task(label, total=steps)
        self.bar.update(self.task, completed=step)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)


def format_summary(summary: dict, folder) -> str:
    best = summary["best"]
    lines = [f"{summary['recipe']}: DNAS ({summary['mode']}, loss {summary['loss']}, α={summary['alpha']}, "
             f"β={summary['beta']}, cost {summary['cost']}) on {summary['space']} "
             f"{summary['input'][1]}×{summary['input'][2]}, {summary['classes']} classes; "
             f"{summary['epochs']} epochs in {summary['search_seconds']:.0f} s"]
    groups: dict[str, list[str]] = {}
    for name, key in best["assignment"].items():
        head, _, rest = name.partition(".layers.") if ".layers." in name else name.rpartition(".")
        groups.setdefault(head, []).append(key if ".layers." in name else f"{rest}={key}")
    lines.append("derived architecture (best.arch.yaml):")
    lines += [f"  {head}: {' '.join(keys)}" for head, keys in groups.items()]
    flops = f"  {best['flops'] / 1e6:.2f}M FLOPs, {best['params'] / 1e6:.3f}M params"
    extremes = summary.get("space_flops")
    if extremes:
        approx = "" if extremes["exact"] else "≈ "
        lines.append(f"{flops}; the space spans {approx}{extremes['smallest'] / 1e6:.2f}M (smallest) to "
                     f"{approx}{extremes['largest'] / 1e6:.2f}M (largest)")
    else:
        lines.append(flops)
    retrain = summary.get("retrain")
    if retrain:
        how = "from the inherited supernet weights" if retrain["inherit"] else "from scratch"
        acc = retrain["test_acc"]
        lines.append(f"  test accuracy {acc:.3f} after retraining {retrain['epochs']} epochs {how}"
                     if acc is not None else f"  retraining ended with status {retrain['status']}")
    lines.append(f"run folder: {folder}")
    return "\n".join(lines)


