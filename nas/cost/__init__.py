"""What an architecture costs: params and FLOPs (fvcore), measured latency, per-choice tables."""
from __future__ import annotations

from dataclasses import dataclass, field

from nas.cost.flops import Breakdown, Cost, count_model, unit_cost  # noqa: F401
from nas.dsl.errors import SpecError
from nas.dsl.nodes import Arch


@dataclass
class ArchCost:
    name: str
    input_shape: tuple[int, int, int]
    total: Cost
    units: list[tuple] = field(default_factory=list)  # (unit, Cost) per op instance, when asked for

    def as_dict(self) -> dict:
        out = {"name": self.name, "input": list(self.input_shape), **self.total.as_dict()}
        if self.units:
            out["units"] = [{"path": u.path, "op": u.op, "out": list(u.out_shape), **c.as_dict()}
                            for u, c in self.units]
        return out


def count_arch(arch: Arch, per_unit: bool = False, latency: bool = False, device: str | None = None,
               seed: int = 0) -> ArchCost:
    """Build `arch` and count it with fvcore (and time it on `device` when `latency`)."""
    from nas.builder import build
    from nas.cost.latency import measure_latency

    plan = arch.plan()
    units = plan.units()
    try:
        model = build(arch, seed=seed)
        breakdown = count_model(model, plan.input_shape, [u.path for u in units] if per_unit else None)
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "allocate" not in str(err) and "out of memory" not in str(err):
            raise
        size = "×".join(map(str, plan.input_shape))
        raise SpecError(f"not enough memory to run {arch.name} at {size}", arch.file,
                        "count at a smaller --input-size") from None
    total = breakdown.total
    if latency:
        total.latency_ms = measure_latency(model, plan.input_shape, device)
    rows = [(u, breakdown.by_module[u.path]) for u in units] if per_unit else []
    return ArchCost(arch.name, plan.input_shape, total, rows)
