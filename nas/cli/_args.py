"""Argument types shared by the subcommands: bad values become one-line SpecErrors naming the flag."""
from __future__ import annotations

import math

from nas.dsl.errors import SpecError


def number(flag: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise SpecError(f"expected a number, got '{text[:40]}'", flag) from None
        if not math.isfinite(value):
            raise SpecError(f"expected a finite number, got '{text}'", flag)
        return value
    return parse


MAX_INT = 2**31 - 1  # sizes, counts and widths beyond this are no network's; torch indexes would overflow


def integer(flag: str, low: int, high: int, what: str, bounds: str):
    """An integer in [low, high]; `what` names it in errors ("a positive integer"), `bounds` the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise SpecError(f"expected {what}, got '{text[:40]}'", flag) from None
        if not low <= value <= high:
            raise SpecError(f"expected {what} {bounds}, got {_short(value)}", flag)
        return value
    return parse


def positive_int(flag: str):
    return integer(flag, 1, MAX_INT, "a positive integer", f"up to {MAX_INT}")


def seed(flag: str):
    """A seed NumPy, torch and Python all accept: 0 <= seed < 2^32."""
    return integer(flag, 0, 2**32 - 1, "an integer seed", "from 0 to 2^32-1")


def _short(value: int) -> str:
    text = str(value)
    return text if len(text) <= 20 else f"{text[:8]}… ({len(text)} digits)"
