"""Supernet step cost: single_path and mixture against the sampled child network, and peak memory.

FBNet space (width ×0.25) and DARTS space (its 8-cell CIFAR search network), both at 32×32, batch 32, two
torch threads. One supernet step = one weight step plus one θ step (forward, backward, optimizer step each),
so the child's step is two SGD steps of a child network (the same number of passes), averaged over three
random children (at θ = 0 single_path samples uniformly, so that is the child it runs on average). For mixture the
"all candidates" reference is the sum of every unit's standalone forward+backward time (each candidate at its
own input shape), times two passes. Times are the median of `--steps` steps after warm-up; each
configuration runs in its own process so that peak RSS (ru_maxrss) is its own; the RSS of a process that only
imported torch and built nothing is printed too, and subtracted in the "net" ratio.

Run: .venv/bin/python bench/supernet.py [--steps 5] [--spaces fbnet darts]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

BATCH, SIZE, THREADS = 32, 32, 2


def load_space(name: str):
    import nas.dsl as dsl

    if name == "fbnet":
        return dsl.load("search_spaces/fbnet.yaml").with_input(size=SIZE).with_classes(10).with_width(0.25)
    return dsl.load("search_spaces/darts.yaml").with_input(size=SIZE).with_classes(10)


def _timed(step, steps: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        step()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(space_name: str, mode: str, steps: int) -> dict:
    from nas.builder import build
    from nas.supernet import Supernet

    torch.manual_seed(0)
    space = load_space(space_name)
    x, y = torch.randn(BATCH, 3, SIZE, SIZE), torch.randint(0, 10, (BATCH,))
    if mode == "idle":
        return {"rss_mb": _rss_mb()}
    if mode == "child":  # single_path samples a uniformly random child at θ = 0: average a few of those
        times = []
        for seed in range(3):
            model = build(space.resolve(space.sample(seed)))
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

            def step(model=model, opt=opt):
                for _ in range(2):
                    opt.zero_grad()
                    nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
            times.append(_timed(step, steps))
        return {"step_s": statistics.mean(times), "rss_mb": _rss_mb()}
    cells = "edges" if space.is_cell and mode == "mixture_edges" else "slots"
    net = Supernet(space, "mixture" if mode.startswith("mixture") else mode, cells=cells)
    net.temperature = 5.0
    w_opt = torch.optim.SGD(net.weights(), lr=0.01, momentum=0.9)
    a_opt = torch.optim.Adam(net.arch.parameters(), lr=0.01)

    def step():
        for opt in (w_opt, a_opt):
            w_opt.zero_grad()
            a_opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    out = {"step_s": _timed(step, steps), "rss_mb": _rss_mb()}
    if mode == "mixture":
        out["all_candidates_s"] = 2 * _standalone_sum(net, x)
    return out


def _standalone_sum(net, x) -> float:
    """Σ over every module that runs in a mixture pass (each candidate, each fixed unit) of its own
    forward+backward time at its input shape."""
    from nas.supernet.cells import CellNode
    from nas.supernet.mixed import MixedOp

    shapes: dict[nn.Module, tuple] = {}
    leaves = []
    for module in net.net.modules():
        if isinstance(module, MixedOp):
            leaves += list(module.candidates.values())
        elif isinstance(module, CellNode):
            leaves += [m for by_op in module.edges.values() for m in by_op.values()]
    top = [m for name, m in net.net.named_modules() if name.count(".") == 1 and not isinstance(m, MixedOp)
           and name.split(".")[0] in ("stem", "head")]
    top += [c.pre0 for c in getattr(net.net, "body", [])] + [c.pre1 for c in getattr(net.net, "body", [])]
    leaves += top
    def record(module, args):
        shapes.setdefault(module, tuple(args[0].shape))  # returns None: the inputs are left as they are

    hooks = [m.register_forward_pre_hook(record) for m in leaves]
    with torch.no_grad():
        net(x, net.arch.sample("mixture", 5.0))
    for h in hooks:
        h.remove()
    total = 0.0
    for module, shape in shapes.items():
        inp = torch.randn(shape, requires_grad=True)

        def step(m=module, i=inp):
            out = m(i)
            if out.requires_grad:  # `zero` makes new zeros: nothing to differentiate
                out.float().sum().backward()
        total += _timed(step, 3)
    return total


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--spaces", nargs="+", default=["fbnet", "darts"])
    parser.add_argument("--modes", nargs="+", default=None, help="only these modes (child and idle always run)")
    parser.add_argument("--one", nargs=2, metavar=("SPACE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.steps)))
        return
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs, torch threads {THREADS}")
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    for space in args.spaces:
        modes = ["idle", "child", "single_path", "mixture"] + (["mixture_edges"] if space == "darts" else [])
        if args.modes:
            modes = ["idle", "child"] + [m for m in modes[2:] if m in args.modes]
        res = {}
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--one", space, mode, "--steps", str(args.steps)],
                                 capture_output=True, text=True, env=env, check=True)
            res[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        child, idle = res["child"], res["idle"]["rss_mb"]
        print(f"\n{space} @ {SIZE}², batch {BATCH}: child step (2 SGD steps) {child['step_s'] * 1e3:.0f} ms, "
              f"peak RSS {child['rss_mb']:.0f} MB (import-only process {idle:.0f} MB)")
        for mode in modes[2:]:
            r = res[mode]
            line = (f"  {mode:14s} step {r['step_s'] * 1e3:7.0f} ms = {r['step_s'] / child['step_s']:5.2f}× child; "
                    f"peak RSS {r['rss_mb']:.0f} MB = {r['rss_mb'] / child['rss_mb']:.2f}× child "
                    f"(net of import {(r['rss_mb'] - idle) / max(1e-9, child['rss_mb'] - idle):.2f}×)")
            if "all_candidates_s" in r:
                line += f"; {r['step_s'] / r['all_candidates_s']:.2f}× the sum of all candidates standalone"
            print(line)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
