"""EfficientNet compound scaling as a pure function of (base, α, β, γ, φ).

depth d = α^φ, width w = β^φ, resolution r = γ^φ with α·β²·γ² ≈ 2, so each step of φ about doubles FLOPs.
Widths round to multiples of `divisor` (never losing more than 10%), repeats round up, the resolution rounds
to the nearest multiple of 8. The released B1–B7 do not follow α^φ exactly: `official(base, phi)` applies
their published (width, depth, resolution, dropout) table instead.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from nas.dsl.errors import SpecError
from nas.dsl.nodes import Arch, Space
from nas.dsl.transform import with_dropout, with_name

# The paper's coefficients, found by grid search at φ = 1 on B0.
DEFAULT_COEFFICIENTS = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
# Released models: (width, depth, resolution, dropout) — tensorflow/tpu efficientnet_builder.
OFFICIAL = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3), 3: (1.2, 1.4, 300, 0.3),
            4: (1.4, 1.8, 380, 0.4), 5: (1.6, 2.2, 456, 0.4), 6: (1.8, 2.6, 528, 0.5), 7: (2.0, 3.1, 600, 0.5)}
# The paper's Table 2 (params, multiply-adds), rounded as published.
PAPER = {0: (5.3e6, 0.39e9), 1: (7.8e6, 0.70e9), 2: (9.2e6, 1.0e9), 3: (12e6, 1.8e9), 4: (19e6, 4.2e9),
         5: (30e6, 9.9e9), 6: (43e6, 19e9), 7: (66e6, 37e9)}


@dataclass(frozen=True)
class Multipliers:
    depth: float
    width: float
    resolution: float


@dataclass
class ScaleResult:
    """A scaled architecture and the numbers `nas scale` prints."""

    arch: Arch
    base: Arch
    multipliers: Multipliers
    phi: float | None = None
    coefficients: dict = field(default_factory=dict)
    official: bool = False

    @property
    def size(self) -> int:
        return self.arch.doc["input"]["size"]

    def stage_rows(self) -> list[tuple]:
        """(stage, op, base c, scaled c, base n, scaled n) per stage."""
        rows = []
        for i, (old, new) in enumerate(zip(self.base.doc["stages"], self.arch.doc["stages"])):
            op = old.get("op") or old.get("block") or "layers"
            rows.append((str(i), str(op), old["c"], new["c"], _repeats(old), _repeats(new)))
        return rows


def _repeats(row: dict) -> int:
    return len(row["layers"]) if "layers" in row else row.get("n", 1)


def coefficients(base: Space, alpha: float | None = None, beta: float | None = None,
                 gamma: float | None = None) -> dict:
    """α, β, γ: explicit values win, then the base file's `scaling:` section, then the paper's."""
    section = base.doc.get("scaling") or {}
    out = {}
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        out[name] = float(value if value is not None else section.get(name, DEFAULT_COEFFICIENTS[name]))
        if out[name] < 1:
            raise SpecError(f"{name} must be ≥ 1, got {out[name]:g}", f"--{name}",
                            "compound scaling only grows a network (α, β, γ ≥ 1)")
    return out


def multipliers(phi: float, alpha: float, beta: float, gamma: float) -> Multipliers:
    if phi < 0:
        raise SpecError(f"φ must be ≥ 0, got {phi:g}", "--phi", "φ = 0 is the base; each +1 about doubles FLOPs")
    return Multipliers(alpha ** phi, beta ** phi, gamma ** phi)


def round_resolution(size: float) -> int:
    return max(8, int(round(size / 8)) * 8)


def check_base(base: Space) -> Arch:
    if base.choices():
        raise SpecError(f"'{base.name}' is a search space with {len(base.choices())} choices", base.file,
                        "scale a fixed architecture (resolve one first)")
    if "stages" not in base.doc:
        raise SpecError(f"'{base.name}' has no stages to scale", base.file,
                        "compound scaling works on block networks (stem / stages / head)")
    return base


def apply(base: Space, m: Multipliers, divisor: int | None = None, size: int | None = None) -> Arch:
    """Scale width, depth and resolution of `base` by `m` (a pure function)."""
    base = check_base(base)
    for name, value in (("depth", m.depth), ("width", m.width), ("resolution", m.resolution)):
        if not value > 0:
            raise SpecError(f"{name} multiplier must be > 0, got {value:g}", f"--{name}")
    divisor = divisor or int((base.doc.get("scaling") or {}).get("divisor", 8))
    arch = base
    if m.width != 1:
        arch = arch.with_width(m.width, divisor)
    if m.depth != 1:
        arch = arch.with_depth(m.depth)
    target = size or round_resolution(base.doc["input"]["size"] * m.resolution)
    if target != base.doc["input"]["size"]:
        arch = arch.with_input(size=target)
    return arch


def scale(base: Space, phi: float, alpha: float | None = None, beta: float | None = None,
          gamma: float | None = None) -> ScaleResult:
    """Compound scaling by the formula: d = α^φ, w = β^φ, r = γ^φ."""
    coeffs = coefficients(base, alpha, beta, gamma)
    m = multipliers(phi, coeffs["alpha"], coeffs["beta"], coeffs["gamma"])
    arch = with_name(apply(base, m), f"{base.name}_phi{phi:g}".replace(".", "p"))
    return ScaleResult(arch, check_base(base), m, phi, coeffs)


def scale_dimensions(base: Space, depth: float = 1.0, width: float = 1.0, resolution: float = 1.0) -> ScaleResult:
    """Scale single dimensions by explicit multipliers (the paper's Figure 3 / Table 3 experiments)."""
    m = Multipliers(depth, width, resolution)
    label = "_".join(f"{k}{v:g}" for k, v in (("d", depth), ("w", width), ("r", resolution)) if v != 1) or "same"
    arch = with_name(apply(base, m), f"{base.name}_{label}".replace(".", "p"))
    return ScaleResult(arch, check_base(base), m)


def official(base: Space, phi: int) -> ScaleResult:
    """The released EfficientNet-B{φ}: the published width/depth/resolution/dropout, not α^φ."""
    if phi not in OFFICIAL:
        raise SpecError(f"--official takes an integer φ from 0 to 7, got {phi:g}", "--phi",
                        "the released models are B0…B7")
    width, depth, size, dropout = OFFICIAL[int(phi)]
    m = Multipliers(depth, width, size / base.doc["input"]["size"])
    arch = with_dropout(apply(base, m, size=size), dropout)
    name = f"efficientnet_b{phi}" if base.name == "efficientnet_b0" else f"{base.name}_official_b{phi}"
    return ScaleResult(with_name(arch, name), check_base(base), m, float(phi), {}, official=True)


def coefficient_grid(step: float = 0.05, tolerance: float = 0.1, maximum: float = 2.0) -> list[tuple]:
    """Admissible (α, β, γ) on a grid: all ≥ 1 and |α·β²·γ² − 2| ≤ tolerance (the paper's step 1, at φ = 1)."""
    if not step > 0 or not tolerance >= 0:
        raise SpecError("the grid needs step > 0 and tolerance ≥ 0")
    count = int(round((maximum - 1) / step)) + 1
    values = [round(1 + i * step, 10) for i in range(count)]
    return [(a, b, g) for a, b, g in itertools.product(values, repeat=3) if abs(a * b * b * g * g - 2) <= tolerance]
