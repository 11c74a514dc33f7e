"""`nas lut` on CPU: does the table's sum rank architectures like their measured end-to-end latency?

Builds the latency table of a space with `nas lut`'s own code (or reads one with --lut), then times N sampled
architectures end to end with the same settings, interleaved (each round times every architecture once, so
a burst of load hits all of them alike), and prints the Spearman rank correlation and the mean relative
error of table vs measured, plus the machine's load (the machine this runs on is usually shared).
Target (issue 12): FBNet at 224², 30 architectures, Spearman ≥ 0.9, mean relative error ≤ 15%.

Run: .venv/bin/python bench/lut.py [--archs 30] [--clock cpu --statistic min] [--copies 1 to see the old way]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nas  # noqa: E402
from nas.cost.latency import CLOCKS, STATISTICS, Timing, time_forward  # noqa: E402
from nas.cost.lut_file import LatencyTable, build_lut, write_lut  # noqa: E402


def load() -> str:
    return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def agreement(space, samples: list[dict], table: LatencyTable, rounds: int) -> dict:
    """Table sum and interleaved end-to-end measurement of each sampled architecture."""
    timing = replace(table.timing, copies=1, warmup=0, repeats=1)  # one timed run per call; rounds interleave
    archs = [space.resolve(picks) for picks in samples]
    models = [nas.build(arch).eval() for arch in archs]
    shape = archs[0].plan().input_shape
    predicted = np.array([table.latency_of(arch.plan().units(), arch.name) for arch in archs])
    for model in models:  # warm-up: allocator, oneDNN primitives
        for _ in range(max(1, table.timing.warmup)):
            time_forward([model], shape, timing)
    runs: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, model in enumerate(models):
            runs[i].append(time_forward([model], shape, timing))
    pick = min if table.timing.statistic == "min" else statistics.median
    measured = np.array([pick(r) for r in runs])
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    return {"predicted": predicted, "measured": measured,
            "spearman": float(np.corrcoef(ranks(predicted), ranks(measured))[0, 1]),
            "mean_rel_error": float(np.mean(np.abs(predicted / measured - 1))),
            "ratio": float(np.mean(measured / predicted))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(ROOT / "search_spaces" / "fbnet.yaml"))
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lut", help="read this table instead of measuring one (its settings are used)")
    parser.add_argument("--save", help="also write the measured table here")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30, help="per table entry, and rounds end to end")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--statistic", choices=STATISTICS, default="median")
    parser.add_argument("--clock", choices=CLOCKS, default="wall")
    parser.add_argument("--copies", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    space = nas.load(args.space).with_input(size=args.input_size)
    print(f"before: {load()}", flush=True)
    began = time.perf_counter()
    if args.lut:
        table = LatencyTable.load(args.lut)
    else:
        timing = Timing("cpu", threads=args.threads, batch=1, warmup=args.warmup, repeats=args.repeats,
                        statistic=args.statistic, clock=args.clock, copies=args.copies)
        data = build_lut(space, timing)
        table = LatencyTable(data, args.save or "<measured>")
        if args.save:
            write_lut(data, args.save)
    table.check_machine()
    table.check_space(space)
    t = table.timing
    print(f"table: {t.statistic} of {t.repeats} ({t.clock} clock), {t.copies} copies, {t.threads} thread(s), "
          f"{time.perf_counter() - began:.0f} s; {load()}", flush=True)
    samples = [space.sample(args.seed + i) for i in range(args.archs)]
    result = agreement(space, samples, table, args.repeats)
    print(f"after: {load()}")
    print("table ms   ", " ".join(f"{v:.1f}" for v in result["predicted"]))
    print("measured ms", " ".join(f"{v:.1f}" for v in result["measured"]))
    print(f"{space.name} @ {args.input_size}², {args.archs} architectures: Spearman {result['spearman']:.3f} "
          f"(target ≥ 0.9), mean relative error {result['mean_rel_error']:.1%} (target ≤ 15%), "
          f"mean measured / table {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
