"""The memory budget of an architecture, checked from its plan before any weight is allocated.

Parameters are counted exactly by building the network on torch's `meta` device (shapes only, no storage);
activation memory at batch 1 is the sum of every unit's input, hidden (expanded) and output feature maps,
read off the plan's shapes. Both are compared with limits sized for this machine — parameters: a sixteenth
of its memory at 4 bytes each (training holds weights, gradients and optimizer state); activations: a
quarter of it — which `NAS_MAX_PARAMS` and `NAS_MAX_ACTIVATION_MB` override. Refusals say the figure.
"""
from __future__ import annotations

import math
import os

from nas.dsl.errors import SpecError
from nas.dsl.plan import Plan, expanded_width

PARAMS_ENV = "NAS_MAX_PARAMS"
ACTIVATION_ENV = "NAS_MAX_ACTIVATION_MB"


def _machine_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not reported: assume a small machine
        return 8 * 1024**3


def _env_limit(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"expected a number, got '{text[:40]}'", name) from None
    if not value > 0 or not math.isfinite(value):
        raise SpecError(f"expected a positive number, got '{text[:40]}'", name)
    return value


def limits() -> tuple[int, int]:
    """(max parameters, max activation bytes at batch 1) for this machine and environment."""
    memory = _machine_bytes()
    params = int(_env_limit(PARAMS_ENV, memory / 16 / 4))
    activation = int(_env_limit(ACTIVATION_ENV, memory / 4 / 2**20) * 2**20)
    return params, activation


def activation_bytes(plan: Plan) -> int:
    """Float32 feature maps of one image through the network: inputs, hidden (expanded) and outputs."""
    total = math.prod(plan.input_shape)
    for unit in plan.units():
        c, h, w = unit.in_shape
        total += math.prod(unit.out_shape)
        if "e" in unit.spec and "c_in" in unit.spec and isinstance(unit.spec["e"], (int, float)):
            total += 2 * expanded_width(unit.spec) * h * w  # the expanded map before and after its depthwise conv
    return 4 * total


def count_params(plan: Plan) -> int:
    """Exact parameter count, from the network built on the meta device (nothing allocated)."""
    import torch

    from nas.builder import build_plan

    with torch.device("meta"):
        model = build_plan(plan)
    return sum(p.numel() for p in model.parameters())


def check_budget(plan: Plan, where: str) -> None:
    """Refuse, with the figure, an architecture too large for this machine — before building it for real."""
    max_params, max_activation = limits()
    activation = activation_bytes(plan)
    if activation > max_activation:
        raise SpecError(f"'{plan.name}' needs about {_mb(activation)} of activations for one "
                        f"{'×'.join(map(str, plan.input_shape))} image, over the limit of {_mb(max_activation)}",
                        where, f"use a smaller input size or width, or raise {ACTIVATION_ENV}")
    params = count_params(plan)
    if params > max_params:
        raise SpecError(f"'{plan.name}' has {params:,} parameters ({_mb(4 * params)}), over the limit of "
                        f"{max_params:,}", where, f"use a smaller width or depth, or raise {PARAMS_ENV}")


def _mb(size: int) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"
