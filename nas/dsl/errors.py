"""The one error type for user input: it carries a location and a hint.

Every problem a user can cause (bad YAML, unknown op, impossible shapes, bad CLI arguments, missing data)
raises `SpecError`; the CLI prints `str(err)` on one line and exits 2.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Location:
    file: str = "<input>"
    line: int = 0  # 1-based; 0 means unknown
    col: int = 0

    def __deepcopy__(self, memo) -> "Location":  # immutable: a document's deep copy can share it (seconds per load)
        return self

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


class SpecError(Exception):
    """A user-input error with `file:line:col`, a message and an optional hint."""

    def __init__(self, message: str, where: Location | str | None = None, hint: str | None = None):
        self.message = message
        self.where = Location(where) if isinstance(where, str) else where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return " ".join(text.split("\n"))  # always one line


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """A 'did you mean X?' hint, or None when nothing is close."""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    if len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return None
