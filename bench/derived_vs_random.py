"""Does DNAS beat chance? The default recipe's derived architecture against random ones of similar FLOPs.

Issue 12's check: the architecture that `nas search recipes/fbnet.yaml` derives, retrained from scratch with the
recipe's retrain budget, should reach at least the median test accuracy of `--random` (10) architectures
sampled uniformly from the same space (`space.sample`, the space's own sampler) and kept only when their
FLOPs (from the per-choice cost table) are within ±`--tolerance` (25%) of the derived one's; each trained with
the same budget, the same seed and the same code (`nas.train.train` with `recipe.train_config`).

Without `--run`, the search itself runs first (`nas search RECIPE`, in a subprocess, timed end to end — the
≤ 10-minute budget of the demo); with `--run RUN_DIR` an earlier run of the recipe is used. Either way the
derived architecture is retrained here too, by the same function as the random ones, so that the comparison
is like for like (the run's own retrain figure is printed next to it).

Run: PYTHONPATH=. python bench/derived_vs_random.py [--recipe recipes/fbnet.yaml] [--run RUN_DIR]
Prints the derived accuracy, the random accuracies and FLOPs, their median, and PASS or FAIL.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def run_search(recipe: str, folder: Path) -> float:
    """`nas search RECIPE -o folder`, end to end in its own process; returns its wall-clock seconds."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nas", "search", recipe, "-o", str(folder), "--quiet"], check=True,
                   env=dict(os.environ, PYTHONPATH=os.getcwd()))
    return time.perf_counter() - began


def similar_flops(space, table, target: float, tolerance: float, count: int, exclude: dict, seed: int,
                  tries: int = 200_000) -> list[tuple[dict, float]]:
    """`count` distinct uniform samples of the space whose table FLOPs are within ±tolerance of `target`."""
    rng = random.Random(seed)
    found: dict[str, tuple[dict, float]] = {json.dumps(exclude, sort_keys=True): (exclude, target)}
    for _ in range(tries):
        assignment = space.sample(rng)
        key = json.dumps(assignment, sort_keys=True)
        if key in found:
            continue
        flops = float(table.estimate(assignment).flops)
        if abs(flops - target) <= tolerance * target:
            found[key] = (assignment, flops)
            if len(found) == count + 1:
                break
    return list(found.values())[1:]


def retrain(space, assignment: dict, data, recipe) -> float:
    """Test accuracy after training from scratch with the recipe's retrain budget (as `retrain:` does)."""
    from nas.builder import build
    from nas.train import train

    model = build(space.resolve(assignment), seed=recipe.seed)
    config = recipe.train_config(epochs=recipe.retrain["epochs"])
    return float(train(model, data, config).test_acc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/fbnet.yaml")
    parser.add_argument("--run", default=None, help="a finished run of the recipe (default: run the search now)")
    parser.add_argument("--random", type=int, default=10, help="random architectures to train")
    parser.add_argument("--tolerance", type=float, default=0.25, help="FLOPs window, relative to the derived arch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random sampler")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each figure as soon as it is known: the whole run is long
    torch.set_num_threads(args.threads)

    from nas.cost.lut import CostTable
    from nas.data import load_dataset
    from nas.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if not recipe.retrain:
        sys.exit(f"{args.recipe} has no retrain: budget to compare with")
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs, torch threads {args.threads}")
    if args.run:
        run = Path(args.run)
    else:
        run = Path(tempfile.mkdtemp(prefix="derived_vs_random-")) / "run"
        seconds = run_search(args.recipe, run)
        print(f"nas search {args.recipe}: {seconds:.0f} s end to end (search, derive, retrain) → {run}")
    summary = json.loads((run / "summary.json").read_text())
    d = recipe.data
    data = load_dataset(d.name, size=d.size, root=d.root, val_fraction=d.val_fraction, seed=d.seed,
                        channels=d.channels)
    space = recipe.load_space(data)
    table = CostTable(space, seed=recipe.seed)
    derived = summary["best"]["assignment"]
    target = float(table.estimate(derived).flops)
    print(f"derived architecture: {target / 1e6:.2f}M FLOPs; search's supernet val acc "
          f"{(summary.get('final_epoch') or {}).get('val_acc')}, the run's retrained test acc "
          f"{(summary.get('retrain') or {}).get('test_acc')}")
    began = time.perf_counter()
    derived_acc = retrain(space, derived, data, recipe)
    print(f"derived, retrained here ({recipe.retrain['epochs']} epochs from scratch): test acc {derived_acc:.4f} "
          f"({time.perf_counter() - began:.0f} s)")
    picks = similar_flops(space, table, target, args.tolerance, args.random, derived, args.seed)
    if len(picks) < args.random:
        print(f"only {len(picks)} random architectures within ±{args.tolerance:.0%} of its FLOPs")
    accs = []
    for i, (assignment, flops) in enumerate(picks):
        accs.append(retrain(space, assignment, data, recipe))
        print(f"random {i + 1:2d}: {flops / 1e6:6.2f}M FLOPs ({flops / target - 1:+.0%}), test acc {accs[-1]:.4f}",
              flush=True)
    median = statistics.median(accs)
    print(f"random test accs: {', '.join(f'{a:.4f}' for a in accs)}")
    print(f"derived {derived_acc:.4f} vs random median {median:.4f} (mean {statistics.mean(accs):.4f}, "
          f"best {max(accs):.4f}, worst {min(accs):.4f}): {'PASS' if derived_acc >= median else 'FAIL'}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
