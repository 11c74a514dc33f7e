"""Measured latency on a torch device: warm-up runs, then the median of N timed runs."""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`auto` picks CUDA when present; an explicit device that this machine lacks is a user error."""
    from nas.dsl.errors import SpecError

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise SpecError(f"unknown device '{device}'", "--device", "use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SpecError("CUDA is not available on this machine", "--device", "use --device cpu or auto")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise SpecError("MPS is not available on this machine", "--device", "use --device cpu or auto")
    return dev


def measure_latency(module: nn.Module, input_shape: tuple[int, ...], device: str | torch.device | None = None,
                    batch: int = 1, warmup: int = 5, runs: int = 20) -> float:
    """Median milliseconds of one forward pass of `module` on a batch of `input_shape` (C, H, W)."""
    dev = resolve_device(device)
    module = module.to(dev).eval()
    x = torch.randn(batch, *input_shape, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        sync()
        for _ in range(runs):
            start = time.perf_counter()
            module(x)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
