"""EfficientNet's step 1 as an ordinary search: the (α, β, γ) triple is the one choice of a space.

`CoefficientSpace(base, triples, phi)` has a single choice, `coefficients`, whose options are the admissible
triples (α·β²·γ² ≈ 2, `nas.scaling.coefficient_grid`); resolving a pick scales the fixed `base` by
d = α^φ, w = β^φ, r = γ^φ with `nas.scaling.apply`. Any strategy searches it like any other space and the
runner treats it like any other space: its cost table (one entry per triple, counted with fvcore) answers
the constraints, a trial whose architecture wants another input size gets the data resized, and
`explain(assignment)` gives the `nas scale` command that uses the winning triple.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from nas.dsl.errors import Location, SpecError
from nas.dsl.nodes import Arch, Choice, Space


def triple_key(alpha: float, beta: float, gamma: float) -> str:
    return f"a{alpha:g}_b{beta:g}_g{gamma:g}"


class CoefficientSpace(Space):
    def __init__(self, base: Space, triples: Sequence[tuple[float, float, float]], phi: float = 1.0,
                 source: str | None = None):
        from nas.scaling import check_base

        self.base = check_base(base)
        if not triples:
            raise SpecError("no (α, β, γ) triple meets α·β²·γ² ≈ 2 on this grid", base.file,
                            "use a smaller step or a larger tolerance")
        self.phi = phi
        self.source = source or base.name
        self.doc, self.file = base.doc, base.file  # the base has no choices: nothing is gated
        options = {triple_key(*t): [float(v) for v in t] for t in triples}
        self._choices = {"coefficients": Choice("coefficients", options, Location(base.file))}

    @property
    def name(self) -> str:
        return f"{self.base.name}_coefficients"

    def size(self) -> int:
        return len(self._choices["coefficients"])

    def triple(self, assignment: Mapping[str, Any]) -> list[float]:
        choice = self._choices["coefficients"]
        if "coefficients" not in assignment:
            raise SpecError("the assignment leaves the choice 'coefficients' open")
        return choice.values[choice.key_of(assignment["coefficients"])]

    def resolve(self, assignment: Mapping[str, Any] | None = None) -> Arch:
        from nas.dsl.transform import with_name
        from nas.scaling import apply, multipliers

        alpha, beta, gamma = self.triple(assignment or {})
        arch = apply(self.base, multipliers(self.phi, alpha, beta, gamma))
        return with_name(arch, f"{self.base.name}_{triple_key(alpha, beta, gamma).replace('.', 'p')}")

    def cost_table(self, latency_device: str | None = None, **_: Any):
        """A per-choice table with one term: the fvcore count of each scaled architecture, counted when a
        triple is first met (all of them at once when a constraint needs the bounds)."""
        return _CountedTable(self, latency_device)

    def explain(self, assignment: Mapping[str, Any]) -> str:
        alpha, beta, gamma = self.triple(assignment)
        product = alpha * beta ** 2 * gamma ** 2
        return (f"best (α, β, γ) = ({alpha:g}, {beta:g}, {gamma:g}), α·β²·γ² = {product:.3f}; "
                f"scale with: nas scale {self.source} --phi PHI --alpha {alpha:g} --beta {beta:g} --gamma {gamma:g}")

    def __repr__(self) -> str:
        return f"CoefficientSpace({self.base.name!r}, triples={self.size()}, phi={self.phi:g})"


class _CountedTable:
    """The part of nas.cost.lut.CostTable's interface the search uses (fixed, terms, estimate), filled lazily."""

    def __init__(self, space: CoefficientSpace, latency_device: str | None):
        from nas.cost.flops import Cost
        from nas.cost.lut import Term

        self.space, self.latency_device = space, latency_device
        self.fixed = Cost()
        self.term = Term("coefficients", ("coefficients",), lambda path: True)

    def _count(self, key: str):
        from nas.cost import count_arch

        if (key,) not in self.term.table:
            arch = self.space.resolve({"coefficients": key})
            self.term.table[(key,)] = count_arch(arch, latency=self.latency_device is not None,
                                                 device=self.latency_device).total
        return self.term.table[(key,)]

    @property
    def terms(self) -> list:
        for key in self.space.choices()["coefficients"].keys:
            self._count(key)
        return [self.term]

    def estimate(self, assignment: Mapping[str, Any]):
        return self.fixed + self._count(self.space.choices()["coefficients"].key_of(assignment["coefficients"]))
