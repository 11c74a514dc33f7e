"""Ceilings on the counts a spec may ask for, so a 100-byte file cannot ask for hours of planning.

Far above every shipped architecture (the deepest stage row has 10 layers, the largest cell 5 nodes,
NASNet-A Large 18 cells), far below what would take minutes. Memory is bounded separately (`nas.budget`).
"""
from __future__ import annotations

from nas.dsl.errors import Location, SpecError

MAX_LAYERS_PER_ROW = 1000  # `n` of one stage row
MAX_CELL_NODES = 64  # `nodes` of one cell
MAX_CELLS = 1000  # cells in a body pattern, repeats included
MAX_INT = 2**53  # any integer parameter (width, kernel, stride, size): exact as a float


def check_at_most(value: int, limit: int, what: str, where: Location | str | None) -> None:
    if value > limit:
        shown = value if len(str(value)) <= 20 else f"{str(value)[:8]}… ({len(str(value))} digits)"
        raise SpecError(f"{what} is {shown}, above the limit of {limit}", where,
                        "no trainable network needs that many")
