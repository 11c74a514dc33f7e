"""Measured latency on a torch device: warm-up runs, then the median (or minimum) of N timed runs.

Why the per-op table and the whole network disagreed (bench/lut.py measures it; README "Latency tables"):
an op timed alone on the same input again and again finds its weights and input hot in cache, while in the
network every layer's weights and input arrive cold; so `Timing.copies` rotates through several copies of
the module and of its input. On a busy machine a long run is preempted where a short op is not, so wall time
inflates whole networks more than ops; `clock="cpu"` (the thread's CPU time, one thread on the CPU only) and
`statistic="min"` (the least disturbed run) are the robust choices there.
"""
from __future__ import annotations

import contextlib
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import torch
from torch import nn

CLOCKS = ("wall", "cpu")
STATISTICS = ("median", "min")


@dataclass(frozen=True)
class Timing:
    """How to time a forward pass. `threads` None leaves torch's thread count as it is."""

    device: str = "auto"
    threads: int | None = None
    batch: int = 1
    warmup: int = 5
    repeats: int = 20
    statistic: str = "median"  # median | min
    clock: str = "wall"  # wall | cpu (thread CPU time: one thread, CPU device)
    copies: int = 1  # modules and inputs rotated through, so each timed run starts cache-cold as in a network

    def as_dict(self) -> dict:
        return asdict(self)


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


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run with `threads` intra-op threads (None: unchanged), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_forward(modules: Sequence[nn.Module], input_shape: tuple[int, ...], timing: Timing) -> float:
    """Milliseconds of one forward pass, rotating through `modules` (copies of one op) and as many inputs."""
    from nas.dsl.errors import SpecError

    dev = resolve_device(timing.device)
    with torch_threads(timing.threads):
        if timing.clock == "cpu" and (dev.type != "cpu" or torch.get_num_threads() != 1):
            raise SpecError("the cpu clock measures one thread on the CPU", "--clock",
                            "use --clock cpu with --device cpu --threads 1, or --clock wall")
        clock = time.thread_time if timing.clock == "cpu" else time.perf_counter
        modules = [m.to(dev).eval() for m in modules]
        inputs = [torch.randn(timing.batch, *input_shape, device=dev) for _ in modules]
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        n, times = len(modules), []
        with torch.inference_mode():
            for i in range(max(timing.warmup, n)):
                modules[i % n](inputs[i % n])
            sync()
            for i in range(timing.repeats):
                start = clock()
                modules[i % n](inputs[i % n])
                sync()
                times.append((clock() - start) * 1e3)
    return min(times) if timing.statistic == "min" else statistics.median(times)


def measure_latency(module: nn.Module, input_shape: tuple[int, ...], device: str | torch.device | None = None,
                    batch: int = 1, warmup: int = 5, runs: int = 20) -> float:
    """Median milliseconds of one forward pass of `module` on a batch of `input_shape` (C, H, W)."""
    return time_forward([module], input_shape, Timing(str(resolve_device(device)), batch=batch, warmup=warmup,
                                                      repeats=runs))


def machine_fingerprint(device: str, threads: int, batch: int) -> dict:
    """What a latency depends on besides the network: the processor, torch, threads and batch."""
    dev = resolve_device(device)
    return {"device": dev.type, "cpu": cpu_model(),
            "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else None,
            "torch": torch.__version__, "threads": threads, "batch": batch}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
