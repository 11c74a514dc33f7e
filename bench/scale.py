"""Beyond one machine: what a Ray cluster and a database-backed study cost.

1. Cluster overhead: the same search (random strategy, fixed seed, so the same architectures train the same
   way) on a 2-node local Ray cluster (two `ray start` processes, 1 CPU each) and on 1 node with the same
   2 CPUs, each joined by address like a user's cluster. Prints both wall times of the search and the ratio
   2-node / 1-node (target: overhead ≤ 10%, i.e. ratio ≤ 1.10). Both clusters live on this machine, so the
   figure is Ray's multi-node cost (object transfer between nodes, scheduling), not the network's.
3. Study storage: Optuna ask+tell on PostgreSQL (a throwaway server started here) and on SQLite, in ms per
   ask+tell and the ratio, twice: with Optuna's RandomSampler (what the storage costs) and through our TPE
   strategy (what a search pays, the sampler's own work included), on a define-by-run walk of the FBNet
   space (22 choices).
2. DNAS with 2 data-parallel workers (Ray Train, gloo on CPU, NCCL on GPU) against 1 worker (the plain
   in-process loop), on the same data and recipe (recipes/fbnet.yaml: FBNet space ×0.25 at 32×32, digits,
   batch 128 split over the workers). Each worker runs 1 torch thread; the 1-worker baseline runs
   `--baseline-threads` (default 1: the same per-process work, so the ratio is what the split and the
   all-reduce cost or gain; 2 threads on a loaded 2-core machine ran 13× slower than 1 in our runs, from
   threads waiting on each other, which says nothing about DDP). Reported per epoch (the loop's own clock,
   without Ray Train's start-up) and as whole wall time (with it). On 2 cores it shows the overhead of two
   processes and the all-reduce; on a multi-GPU machine, the speed-up.

Run: PYTHONPATH=.:tests .venv/bin/python bench/scale.py [--trials 8] [--asks 60] [--skip-cluster] [--skip-ddp]
     [--skip-study] [--ddp-epochs 2] [--workers 2] [--baseline-threads 1] [--mode single_path]
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# The clusters below use token auth; Ray reads the token once per process, at import: set it first.
os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # nas from this checkout; the real services of the tests

from services import Postgres, RayCluster, postgres_bin  # noqa: E402

RECIPE = """
name: scale_bench
space: {{source: fbnet, width: 0.25, depth: 0.25}}
strategy: random
train: {{epochs: 2, batch_size: 64, warmup_epochs: 0}}
budget: {{trials: {trials}}}
resources: {{cpus: 2, cpus_per_trial: 1, concurrency: 2}}
seed: 0
"""


def timed_search(cluster: RayCluster, trials: int, folder: Path) -> float:
    """Wall seconds of one search driven from this process against `cluster` (Ray joined beforehand)."""
    import ray

    from nas.recipe import loads_recipe
    from nas.runs import RunDir
    from nas.search.runner import prepare, run_search
    from nas.search.tuner import ray_connection

    recipe = loads_recipe(RECIPE.format(trials=trials))
    prepared = prepare(recipe)
    with ray_connection(cluster.address, recipe.resources):
        with RunDir.create(folder, kind="search") as run:
            began = time.perf_counter()
            summary = run_search(recipe, run, quiet=True, prepared=prepared)
            seconds = time.perf_counter() - began
    assert not ray.is_initialized()
    if summary["counts"]["ok"] != trials:
        raise RuntimeError(f"the bench search did not train every trial: {summary['counts']}")
    return seconds


def part_cluster(args) -> None:
    print(f"1. {args.trials} trials (2 epochs each, 2 at a time): 2-node cluster vs 1 node, same 2 CPUs")
    times = {}
    with tempfile.TemporaryDirectory(prefix="nasbench") as tmp:
        for label, nodes, cpus in (("1 node x 2 CPUs", 1, 2), ("2 nodes x 1 CPU", 2, 1)):
            cluster = RayCluster(cpus_per_node=cpus, token=os.environ["RAY_AUTH_TOKEN"])
            try:
                cluster.start(nodes=nodes)
                times[label] = timed_search(cluster, args.trials, Path(tmp) / label.replace(" ", "_"))
            finally:
                cluster.stop()
            print(f"   {label}: {times[label]:.1f} s")
    ratio = times["2 nodes x 1 CPU"] / times["1 node x 2 CPUs"]
    print(f"   ratio 2-node / 1-node: {ratio:.3f} (target ≤ 1.10)")


def ask_tell_ms(storage: str, asks: int) -> float:
    """Our TPE strategy: the sampler's own work included, as a search pays it."""
    from nas.dsl import load
    from nas.recipe import Objective
    from nas.search.strategies import Outcome, make_strategy
    from nas.zoo import resolve_source

    space = load(resolve_source("fbnet"))
    strategy = make_strategy("tpe", space, [Objective("accuracy", "max")], {"startup": 10}, seed=0,
                             storage=storage, study_name="bench", fresh=True)
    try:
        began = time.perf_counter()
        for i in range(asks):
            number, assignment = strategy.ask()
            strategy.tell(number, Outcome("ok", [((len(str(assignment)) * 7919 + i) % 1000) / 1000]))
        return (time.perf_counter() - began) / asks * 1000
    finally:
        strategy.close()


def storage_ms(storage: str, asks: int) -> float:
    """Optuna's RandomSampler on the same define-by-run walk: what the storage itself costs per ask+tell."""
    import optuna

    from nas.dsl import load
    from nas.search.strategies.optuna import open_storage
    from nas.zoo import resolve_source

    space = load(resolve_source("fbnet"))
    rdb = open_storage(storage)
    study = optuna.create_study(study_name="bench-random", storage=rdb, sampler=optuna.samplers.RandomSampler(0))
    try:
        began = time.perf_counter()
        for i in range(asks):
            trial = study.ask()
            space.walk(lambda name, choice: trial.suggest_categorical(name, list(choice.keys)))
            study.tell(trial, i / asks)
        return (time.perf_counter() - began) / asks * 1000
    finally:
        rdb.engine.dispose()


def part_ddp(epochs: int = 2, workers: int = 2, mode: str | None = None, baseline_threads: int = 1) -> dict:
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


def part_study(args) -> None:
    print(f"3. Optuna ask+tell on the FBNet space, {args.asks} trials: PostgreSQL (fsync on) vs SQLite")
    if postgres_bin() is None:
        print("   skipped: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
        return
    server = Postgres(fsync=True)  # durable commits, as SQLite's are
    try:
        server.start()
        for label, measure in (("random sampler (storage only)", storage_ms), ("our TPE strategy", ask_tell_ms)):
            with tempfile.TemporaryDirectory(prefix="nasbench") as tmp:
                sqlite = measure(f"sqlite:///{tmp}/study.db", args.asks)
            postgres = measure(server.url, args.asks)
            print(f"   {label}: SQLite {sqlite:.1f} ms per ask+tell, PostgreSQL {postgres:.1f} ms, "
                  f"ratio PostgreSQL / SQLite {postgres / sqlite:.2f}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--asks", type=int, default=60)
    parser.add_argument("--skip-cluster", action="store_true", help="skip part 1")
    parser.add_argument("--skip-study", action="store_true", help="skip part 3")
    parser.add_argument("--skip-ddp", action="store_true", help="skip part 2")
    parser.add_argument("--ddp-epochs", type=int, default=2, help="DNAS epochs (the first is the warm-up)")
    parser.add_argument("--workers", type=int, default=2, help="data-parallel workers against 1")
    parser.add_argument("--baseline-threads", type=int, default=1, help="torch threads of the 1-worker run")
    parser.add_argument("--mode", choices=("mixture", "single_path", "softmax"), default=None,
                        help="supernet mode of part 2 (default: the recipe's, mixture; single_path is ~10× quicker)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if not args.skip_cluster:
        part_cluster(args)
    if not args.skip_ddp:
        part_ddp(args.ddp_epochs, args.workers, args.mode, args.baseline_threads)
    if not args.skip_study:
        part_study(args)


if __name__ == "__main__":
    main()
