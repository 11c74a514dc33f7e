"""Argument types shared by the subcommands: bad values become one-line SpecErrors naming the flag."""
from __future__ import annotations

import math

from nas.dsl.errors import SpecError


def number(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise SpecError(f"expected a number, got '{text}'", flag) from None
        if not math.isfinite(value):
            raise SpecError(f"expected a finite number, got '{text}'", flag)
        return value
    return parse


def positive_int(flag: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise SpecError(f"expected a positive integer, got '{text}'", flag) from None
        if value < 1:
            raise SpecError(f"expected a positive integer, got {value}", flag)
        return value
    return parse
