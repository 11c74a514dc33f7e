"""The search-space language: parse, validate, resolve, transform, dump. Imports no torch."""
from __future__ import annotations

import os

from nas.dsl.dump import dumps as _dumps
from nas.dsl.errors import Location, SpecError, did_you_mean
from nas.dsl.nodes import Arch, Choice, Space
from nas.dsl.parse import parse_yaml, read_yaml
from nas.dsl.plan import Plan, Unit, plan

__all__ = ["Arch", "Choice", "Space", "SpecError", "Location", "Plan", "Unit", "load", "loads", "dump", "dumps",
           "plan", "did_you_mean"]


def loads(text: str, file: str = "<string>") -> Space:
    """Parse YAML text; returns an `Arch` when it holds no choices, else a `Space`."""
    return Space.from_data(parse_yaml(text, file), file)


def load(path: str | os.PathLike) -> Space:
    """Load a space or architecture file (returns an `Arch` when the file holds no choices)."""
    path = os.fspath(path)
    return Space.from_data(read_yaml(path), path)


def dumps(space: Space, header: str | None = None) -> str:
    return _dumps(space, header)


def dump(space: Space, path: str | os.PathLike, header: str | None = None) -> None:
    write_text_atomic(path, dumps(space, header))


def write_text_atomic(path: str | os.PathLike, text: str | bytes) -> None:
    """Write a single user-named file (not a run folder) through a temp file and a rename, so a kill never leaves
    it half-written; file-system errors are one-line SpecErrors. `text` may be bytes (a PNG figure)."""
    folder = os.path.dirname(os.fspath(path))
    tmp = f"{os.fspath(path)}.tmp"
    if os.path.exists(path) and not os.path.isfile(path):
        # the rename would replace it: a device such as /dev/null (as root), a pipe, a folder
        raise SpecError("not a regular file: refusing to replace it", Location(os.fspath(path)),
                        "write to a file path (an existing file is replaced)")
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.replace(tmp, path)
    except OSError as err:  # a folder in the way, a path under a file, a read-only disk
        if os.path.isfile(tmp):
            os.unlink(tmp)
        raise SpecError(f"cannot write: {err.strerror or err}", Location(os.fspath(path))) from None
