"""The rounding rules for widths and depths: one definition each, used by the DSL's transforms and by the ops.

No imports beyond `math`: `nas.export` copies these definitions into a standalone model.py beside the op
modules that call them (nas/ops may import this module; it imports no torch).
"""
from __future__ import annotations

import math


def round_channels(channels: float, divisor: int = 8) -> int:
    """Nearest multiple of `divisor` (never below it), one step up if 10% was lost (EfficientNet).

    A divisor ≤ 1 truncates, never below 1: EfficientNet's squeeze-excite width, int(c·ratio)."""
    if divisor <= 1:
        return max(1, int(channels))
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * channels:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, multiplier: float) -> int:
    """EfficientNet's depth rule: repeats are rounded up."""
    return int(math.ceil(multiplier * repeats - 1e-9))
