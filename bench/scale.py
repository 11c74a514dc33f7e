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
(Part 2, DNAS epoch time with DDP workers, is added by the data-parallel work.)

Run: PYTHONPATH=.:tests .venv/bin/python bench/scale.py [--trials 8] [--asks 60] [--skip-cluster] [--skip-study]
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
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the real services of the tests

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
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if not args.skip_cluster:
        part_cluster(args)
    if not args.skip_study:
        part_study(args)


if __name__ == "__main__":
    main()
