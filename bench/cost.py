"""Per-choice cost table vs fvcore's full count, on 200 sampled FBNet architectures.

Prints agreement (max relative error of FLOPs and params) and speed (estimates per second, fvcore full
counts per second, and their ratio). Run: .venv/bin/python bench/cost.py [--samples 200] [--space PATH]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import nas
from nas.cost.flops import count_model
from nas.cost.lut import CostTable

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "fbnet.yaml"))
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--latency", metavar="DEVICE", default=None,
                        help="also compare the per-op latency table with whole-model latency on DEVICE")
    parser.add_argument("--latency-samples", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(2)

    space = nas.load(args.space)
    if args.input_size:
        space = space.with_input(size=args.input_size)
    start = time.perf_counter()
    table = CostTable(space)
    build_s = time.perf_counter() - start
    samples = [space.sample(seed) for seed in range(args.samples)]

    # Estimates: repeat the whole batch until at least a second has passed, for a stable rate.
    rounds, start = 0, time.perf_counter()
    while True:
        estimates = [table.estimate(a) for a in samples]
        rounds += 1
        if time.perf_counter() - start > 1.0:
            break
    est_rate = rounds * len(samples) / (time.perf_counter() - start)

    worst_flops = worst_params = 0.0
    start = time.perf_counter()
    for picks, est in zip(samples, estimates):
        arch = space.resolve(picks)
        full = count_model(nas.build(arch), arch.plan().input_shape).total
        worst_flops = max(worst_flops, abs(est.flops / full.flops - 1))
        worst_params = max(worst_params, abs(est.params / full.params - 1))
    full_rate = len(samples) / (time.perf_counter() - start)

    print(f"space {space.name}: {len(space.choices())} choices, table of {len(table)} entries built in {build_s:.2f} s")
    print(f"agreement over {len(samples)} architectures: max |rel. error| FLOPs {worst_flops:.2e}, "
          f"params {worst_params:.2e}  (target ≤ 5e-3)")
    print(f"cost table: {est_rate:,.0f} estimates/s  (target ≥ 10,000)")
    print(f"fvcore full count (resolve + build + trace): {full_rate:,.2f} architectures/s")
    print(f"speed ratio table / fvcore: {est_rate / full_rate:,.0f}x")
    if args.latency:
        latency_agreement(space, samples[: args.latency_samples], args.latency)


def latency_agreement(space, samples, device: str) -> None:
    """FBNet's premise: the sum of per-op latencies ranks architectures like their measured latency.
    The measurement is bench/lut.py's (which also explains the settings); this is its quick form."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from lut import agreement

    from nas.cost.latency import Timing
    from nas.cost.lut_file import LatencyTable, build_lut

    timing = Timing(device, threads=torch.get_num_threads(), warmup=8, repeats=30, copies=8)
    result = agreement(space, samples, LatencyTable(build_lut(space, timing), "<measured>"), rounds=30)
    print(f"latency on {device} over {len(samples)} architectures: Spearman rank correlation table vs "
          f"measured {result['spearman']:.3f}, mean relative error {result['mean_rel_error']:.1%}, "
          f"mean measured / table {result['ratio']:.2f} (bench/lut.py for the full measurement)")


if __name__ == "__main__":
    main()
