"""Training-loop overhead: images/s of `nas.train` vs a minimal hand-written torch loop doing the same work.

Same network (MobileNetV2 ×0.25 at 32×32 from the zoo), same data (digits), same batches and optimizer;
`nas.train` runs with gradient clipping off so both do identical maths. Repetitions alternate between the two
loops so that machine noise hits both alike; the medians and their ratio are printed (target overhead ≤ 5%).
Run: .venv/bin/python bench/train.py [--reps 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import nas
from nas.data import batches, load_dataset
from nas.train import TrainConfig, pick_device, train


def hand_loop(model: nn.Module, data, batch_size: int, lr: float, device: torch.device, seed: int) -> float:
    """The minimum: shuffle, forward, cross-entropy, backward, SGD step. Returns images/s."""
    model.train().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    seen, start = 0, time.perf_counter()
    for x, y in batches(data.train, batch_size, shuffle=True, generator=generator):
        x, y = x.to(device), y.to(device)
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(2)
    device = pick_device(args.device)
    data = load_dataset("digits", size=32)
    arch = nas.zoo.load("mobilenetv2").with_width(0.25).with_input(channels=1, size=32).with_classes(10)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.05, grad_clip=None, warmup_epochs=0,
                         device=str(device))
    ours, hand = [], []
    for rep in range(args.reps + 1):  # the first round warms up caches and allocators; not counted
        result = train(nas.build(arch, seed=rep), data, config)
        ours_rate = result.history[-1]["images_per_s"]
        hand_rate = hand_loop(nas.build(arch, seed=rep), data, args.batch_size, 0.05, device, rep)
        if rep:
            ours.append(ours_rate)
            hand.append(hand_rate)
    o, h = statistics.median(ours), statistics.median(hand)
    print(f"device {device}, {arch.name} ×0.25 @ 32×32, batch {args.batch_size}, {len(data.train)} images/epoch, "
          f"{args.reps} alternating repetitions")
    print(f"nas.train : {o:8.1f} images/s (median; runs {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"hand loop : {h:8.1f} images/s (median; runs {', '.join(f'{v:.0f}' for v in hand)})")
    print(f"overhead  : {100 * (h / o - 1):+.1f}%  (target ≤ 5%)")


if __name__ == "__main__":
    main()
