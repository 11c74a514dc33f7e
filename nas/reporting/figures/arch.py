"""One figure for any fixed architecture: cells as graphs, block networks as FBNet-style layer boxes."""
from __future__ import annotations


def arch_figure(arch):
    if arch.is_cell:
        from nas.reporting.figures.arch_cells import cells_figure

        return cells_figure(arch)
    from nas.reporting.figures.arch_blocks import blocks_figure

    return blocks_figure(arch)
