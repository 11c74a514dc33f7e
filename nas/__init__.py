"""nas — neural architecture search toolkit.

The light entry points (`load`, `loads`) need no torch; `build` imports torch on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load", "loads", "build", "SpecError"]

from nas.dsl.errors import SpecError  # noqa: E402


def __getattr__(name: str):
    # Lazy so that `import nas` and the DSL stay torch-free.
    if name in ("load", "loads", "dump", "dumps"):
        from nas import dsl

        return getattr(dsl, name)
    if name in ("zoo", "data", "train", "cost", "scaling", "export", "report"):
        import importlib

        return importlib.import_module(f"nas.{name}")
    if name == "build":
        from nas.builder import build

        return build
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
