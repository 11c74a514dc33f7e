"""EfficientNet compound scaling as a pure function of (base, α, β, γ, φ).

depth d = α^φ, width w = β^φ, resolution r = γ^φ with α·β²·γ² ≈ 2, so each step of φ about doubles FLOPs
(FLOPs grow as d·w²·r²). The rounding follows the official code (tensorflow/tpu `round_filters`,
`round_repeats`): widths go to the nearest multiple of `divisor` (never below it) and up one more step when
that lost more than 10%, on the stem, every stage and the head conv; repeats round up.

Resolution has no rule in the official code: the released B1–B7 list their resolutions explicitly (240, 260,
300, 380, 456, 528, 600 — multiples of 4, not of 8, and not γ^φ·224), and `official(base, phi)` applies
that published (width, depth, resolution, dropout) table. For the formula we round r·size to the nearest
multiple of 8 (`round_resolution`) — our choice, stated here; any integer size builds.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

from nas.dsl.errors import SpecError
from nas.dsl.nodes import Arch, Space
from nas.dsl.transform import with_dropout, with_name

# The paper's coefficients, found by grid search at φ = 1 on B0.
DEFAULT_COEFFICIENTS = {"alpha": 1.2, "beta": 1.1, "gamma": 1.15}
# Released models: (width, depth, resolution, dropout) — tensorflow/tpu efficientnet_builder.
OFFICIAL = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3), 3: (1.2, 1.4, 300, 0.3),
            4: (1.4, 1.8, 380, 0.4), 5: (1.6, 2.2, 456, 0.4), 6: (1.8, 2.6, 528, 0.5), 7: (2.0, 3.1, 600, 0.5)}
OFFICIAL_BASE_SIZE = 224
# The paper's Table 2 (params, multiply-adds), rounded as published.
PAPER = {0: (5.3e6, 0.39e9), 1: (7.8e6, 0.70e9), 2: (9.2e6, 1.0e9), 3: (12e6, 1.8e9), 4: (19e6, 4.2e9),
         5: (30e6, 9.9e9), 6: (43e6, 19e9), 7: (66e6, 37e9)}
RESOLUTION_MULTIPLE = 8


@dataclass(frozen=True)
class Multipliers:
    depth: float
    width: float
    resolution: float

    @property
    def flops_growth(self) -> float:
        """The ideal FLOPs factor d·w²·r² (rounding moves the real one a little)."""
        return self.depth * self.width ** 2 * self.resolution ** 2


@dataclass
class ScaleResult:
    """A scaled architecture, its base, and how it was scaled."""

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

    def rows(self) -> list[tuple]:
        """Stem, stage and head rows: (part, op, base c, scaled c, base n, scaled n); c is None for ops
        without a width of their own (pools), the classifier is left out."""
        out = [("stem", str(o["op"]), o.get("c"), n.get("c"), 1, 1)
               for o, n in zip(self.base.doc["stem"], self.arch.doc["stem"])]
        out += self.stage_rows()
        out += [("head", str(o["op"]), o.get("c"), n.get("c"), 1, 1)
                for o, n in zip(self.base.doc["head"], self.arch.doc["head"]) if o.get("op") != "classifier"]
        return out


@dataclass
class ScaleReport:
    """Everything `nas scale` prints: the result plus params and FLOPs of it and of its base."""

    result: ScaleResult
    params: int
    flops: float
    base_params: int
    base_flops: float

    @property
    def flops_growth(self) -> float:
        return self.flops / self.base_flops

    @property
    def target_growth(self) -> float | None:
        """2^φ, what compound scaling aims at (None when one dimension was scaled by hand)."""
        return None if self.result.phi is None else 2.0 ** self.result.phi

    def as_dict(self) -> dict:
        r, m = self.result, self.result.multipliers
        return {"name": r.arch.name, "base": r.base.name, "size": r.size, "params": self.params,
                "flops": self.flops, "base_params": self.base_params, "base_flops": self.base_flops,
                "flops_growth": self.flops_growth, "ideal_growth": m.flops_growth,
                "target_growth": self.target_growth, "depth": m.depth, "width": m.width,
                "resolution": m.resolution, "phi": r.phi, "coefficients": r.coefficients or None,
                "official": r.official,
                "stages": [{"part": p, "op": op, "c": c1, "n": n1} for p, op, _, c1, _, n1 in r.rows()]}


MAX_MULTIPLIER = 100.0  # depth, width or resolution: EfficientNet-B7 is at 3.1 / 2.0 / 2.7


def _repeats(row: dict) -> int:
    return len(row["layers"]) if "layers" in row else row.get("n", 1)


def coefficients(base: Space, alpha: float | None = None, beta: float | None = None,
                 gamma: float | None = None) -> dict:
    """α, β, γ: explicit values win, then the base file's `scaling:` section, then the paper's."""
    section = base.doc.get("scaling") or {}
    out = {}
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        out[name] = float(value if value is not None else section.get(name, DEFAULT_COEFFICIENTS[name]))
        if not out[name] >= 1:
            raise SpecError(f"{name} must be ≥ 1, got {out[name]:g}", f"--{name}",
                            "compound scaling only grows a network (α, β, γ ≥ 1)")
    return out


def multipliers(phi: float, alpha: float, beta: float, gamma: float) -> Multipliers:
    if not phi >= 0:
        raise SpecError(f"φ must be ≥ 0, got {phi:g}", "--phi", "φ = 0 is the base; each +1 about doubles FLOPs")
    try:
        return Multipliers(alpha ** phi, beta ** phi, gamma ** phi)
    except OverflowError:
        raise SpecError(f"φ = {phi:g} overflows α^φ, β^φ or γ^φ", "--phi",
                        f"each multiplier must stay ≤ {MAX_MULTIPLIER:g}") from None


def round_resolution(size: float, multiple: int = RESOLUTION_MULTIPLE) -> int:
    """r·size to the nearest multiple of `multiple` (halves round up; never below `multiple`)."""
    return max(multiple, int(size / multiple + 0.5) * multiple)


def check_base(base: Space) -> Arch:
    """A fixed block architecture, or a one-line SpecError saying why `base` cannot be scaled."""
    base.require_fixed("scale a fixed architecture (resolve one first)")
    if not base.doc.get("stages"):
        kind = "a cell network" if "cells" in base.doc else "a network without stages"
        raise SpecError(f"'{base.name}' has no stages to scale ({kind})", base.file,
                        "compound scaling works on block networks (stem / stages / head)")
    return base


def apply(base: Space, m: Multipliers, divisor: int | None = None, size: int | None = None) -> Arch:
    """Scale width, depth and resolution of `base` by `m` (a pure function); `size` overrides r·size."""
    base = check_base(base)
    for name, value in (("depth", m.depth), ("width", m.width), ("resolution", m.resolution)):
        if not value > 0:
            raise SpecError(f"{name} multiplier must be > 0, got {value:g}", f"--{name}")
        if not value <= MAX_MULTIPLIER:  # also NaN and inf; beyond it no machine could build the result
            raise SpecError(f"{name} multiplier is {value:.4g}, above the limit of {MAX_MULTIPLIER:g}", f"--{name}",
                            "use a smaller φ or multiplier")
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
    """Compound scaling by the formula: d = α^φ, w = β^φ, r = γ^φ (α, β, γ default to the base's)."""
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
    """The released EfficientNet-B{φ}: the published width/depth/resolution/dropout, not α^φ.

    The table's resolutions are for a 224² base; a base at another size gets them in proportion."""
    if isinstance(phi, bool) or phi not in OFFICIAL:
        raise SpecError(f"--official takes an integer φ from 0 to 7, got {phi}", "--phi",
                        "the released models are B0…B7")
    phi = int(phi)
    width, depth, size, dropout = OFFICIAL[phi]
    base_size = check_base(base).doc["input"]["size"]
    if base_size != OFFICIAL_BASE_SIZE:
        size = round_resolution(base_size * size / OFFICIAL_BASE_SIZE)
    m = Multipliers(depth, width, size / base_size)
    arch = with_dropout(apply(base, m, size=size), dropout)
    name = f"efficientnet_b{phi}" if base.name == "efficientnet_b0" else f"{base.name}_official_b{phi}"
    arch = with_name(arch, name)
    if base.name == "efficientnet_b0":  # the released model has published figures of its own
        doc = arch.clone_doc()
        doc["reference"] = {"params": PAPER[phi][0], "flops": PAPER[phi][1], "source": "Tan & Le 2019, Table 2"}
        doc["description"] = f"EfficientNet-B{phi} (the released width, depth, resolution and dropout)"
        arch = arch.copy_with(doc)
    return ScaleResult(arch, base, m, float(phi), {}, official=True)


def count(arch: Arch):
    """Params and FLOPs (a `nas.cost.Cost`) of a block architecture: the sum of fvcore's count of each op at
    its input shape, cached per (op, shape) — equal to counting the built network (its forward is stem,
    stages, head), and much faster across φ because scaled networks repeat the same layers."""
    from nas.cost.flops import Cost, unit_cost

    total = Cost()
    for unit in arch.plan().units():
        total = total + unit_cost(unit.spec, unit.in_shape)
    return total


def report(result: ScaleResult) -> ScaleReport:
    """Count the scaled architecture and its base."""
    cost, base_cost = count(result.arch), count(result.base)
    return ScaleReport(result, cost.params, cost.flops, base_cost.params, base_cost.flops)


@dataclass
class TableRow:
    """One φ of `nas scale --table`: the formula and the official table side by side."""

    phi: int
    formula: ScaleReport
    official: ScaleReport
    paper: tuple[float, float] | None  # the paper's Table 2 (params, FLOPs), for an EfficientNet-B0 base


def compare(base: Space, alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
            phis: range = range(8), on_step: Callable[[int], None] | None = None) -> list[TableRow]:
    """φ = 0…7 by the formula and by the official table, counted; `on_step(phi)` after each φ."""
    rows = []
    for phi in phis:
        paper = PAPER.get(phi) if base.name == "efficientnet_b0" else None
        rows.append(TableRow(phi, report(scale(base, phi, alpha, beta, gamma)), report(official(base, phi)), paper))
        if on_step:
            on_step(phi)
    return rows


def coefficient_grid(step: float = 0.05, tolerance: float = 0.1, maximum: float = 2.0) -> list[tuple]:
    """Admissible (α, β, γ) on a grid from 1 to `maximum`: all ≥ 1 and |α·β²·γ² − 2| ≤ tolerance (the paper's
    step 1, a grid search at φ = 1). The paper's own triple (1.2, 1.1, 1.15) gives 1.92, so it needs ≥ 0.08."""
    if not step > 0 or not tolerance >= 0 or not maximum >= 1:
        raise SpecError("the coefficient grid needs step > 0, tolerance ≥ 0 and maximum ≥ 1")
    count_ = int(round((maximum - 1) / step)) + 1
    values = [round(1 + i * step, 10) for i in range(count_)]
    return [(a, b, g) for a, b, g in itertools.product(values, repeat=3) if abs(a * b * b * g * g - 2) <= tolerance]
