"""Beyond one machine (issue 14): what running on more workers costs or gains.

(2) DNAS with 2 data-parallel workers (Ray Train, gloo on CPU, NCCL on GPU) against 1 worker (the plain
    in-process loop), on the same data and the same recipe (recipes/fbnet.yaml: FBNet space ×0.25 at 32×32,
    digits, mixture mode, batch 128 split over the workers). Each worker runs 1 torch thread; the 1-worker
    baseline runs `--baseline-threads` (default 1: the same per-process work, so the ratio is what the
    split and the all-reduce cost or gain; 2 threads on a loaded 2-core machine ran 13× slower than 1 in
    our runs, from threads waiting on each other, which says nothing about DDP). Reported per epoch (the loop's own clock: Ray Train's
    start-up is not in it; the warm-up epoch trains weights only, the search epoch weights and θ) and as
    whole wall time (with the start-up). On a 2-core machine it shows the overhead of two processes and the
    all-reduce; on a multi-GPU machine, the speed-up.

Run: nice -n 19 .venv/bin/python bench/scale.py [--skip-ddp] [--ddp-epochs 2] [--workers 2] [--mode M]
(`--skip-cluster` and `--skip-storage` skip parts (1) and (3), which live beside this one.)
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def bench_ddp(epochs: int = 2, workers: int = 2, mode: str | None = None, baseline_threads: int = 1) -> dict:
    """DNAS epoch seconds with `workers` Ray Train workers over 1 worker, the demo recipe on the same data."""
    import ray
    import torch

    from nas.data import load_dataset
    from nas.recipe import load_recipe
    from nas.runs import RunDir
    from nas.supernet.ddp import search_on_workers
    from nas.supernet.dnas import search
    from nas.supernet.strategy import config_from_recipe

    # both sides on the same kind of device: CUDA only where every worker gets a GPU
    device = "cuda" if torch.cuda.device_count() >= workers else "cpu"
    sets = [f"strategy.epochs={epochs}", "strategy.warmup=1", f"resources.workers={workers}",
            f"resources.cpus={max(workers, os.cpu_count() or 1)}", f"train.device={device}"]
    if mode:
        sets.append(f"strategy.mode={mode}")
    recipe = load_recipe(ROOT / "recipes" / "fbnet.yaml", sets)
    config = config_from_recipe(recipe)
    d = recipe.data
    data = load_dataset(d.name, size=d.size, root=d.root, val_fraction=d.val_fraction, seed=d.seed, channels=d.channels)
    space = recipe.load_space(data)

    torch.set_num_threads(baseline_threads)
    began = time.perf_counter()
    one = search(space, data, config)
    one_wall = time.perf_counter() - began

    ray.init(num_cpus=max(workers, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with tempfile.TemporaryDirectory() as tmp, RunDir.create(Path(tmp) / "run", kind="search") as run:
            began = time.perf_counter()
            many = search_on_workers(recipe, space, data, config, run, quiet=True)
            many_wall = time.perf_counter() - began
    finally:
        ray.shutdown()

    print(f"(2) DNAS, {space.name} ×{recipe.space.width} at {space.doc['input']['size']}², {config.mode}, "
          f"{len(data.train)} training images, global batch {config.batch_size}, {device}: {workers} workers vs 1 "
          f"(1 worker with {baseline_threads} torch thread(s), each of the {workers} with 1)")
    rows = []
    for a, b in zip(one.history, many.history):
        ratio = b["seconds"] / a["seconds"]
        rows.append(ratio)
        print(f"    epoch {a['epoch']} ({a['phase']:6s}): 1 worker {a['seconds']:7.1f} s   {workers} workers "
              f"{b['seconds']:7.1f} s   ratio {ratio:.2f}")
    print(f"    whole search (Ray Train start-up included): 1 worker {one_wall:.1f} s   {workers} workers "
          f"{many_wall:.1f} s   ratio {many_wall / one_wall:.2f}")
    return {"epoch_ratios": rows, "wall_ratio": many_wall / one_wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cluster", action="store_true", help="skip (1): trials on a 2-node cluster")
    parser.add_argument("--skip-ddp", action="store_true", help="skip (2): DNAS on 2 data-parallel workers")
    parser.add_argument("--skip-storage", action="store_true", help="skip (3): Optuna on PostgreSQL vs SQLite")
    parser.add_argument("--ddp-epochs", type=int, default=2, help="DNAS epochs (the first is the warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="data-parallel workers against 1")
    parser.add_argument("--baseline-threads", type=int, default=1, help="torch threads of the 1-worker run")
    parser.add_argument("--mode", choices=("mixture", "single_path", "softmax"), default=None,
                        help="supernet mode (default: the recipe's, mixture; single_path is ~10× quicker)")
    args = parser.parse_args()
    if not args.skip_ddp:
        bench_ddp(args.ddp_epochs, args.workers, args.mode, args.baseline_threads)


if __name__ == "__main__":
    main()
