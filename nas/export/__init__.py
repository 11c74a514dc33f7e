"""Export an architecture to ship it: arch YAML, standalone PyTorch source, weights, TorchScript, ONNX.

`export(arch, out_dir, formats)` writes the files; `write_python` / `python_source` give the standalone
source alone (see `nas.export.source` for how it is kept safe from spec text).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from nas.dsl.errors import SpecError, did_you_mean
from nas.dsl.nodes import Arch
from nas.export.formats import check_onnx, model_with_weights, write_onnx, write_torchscript
from nas.export.source import check_class_name, fixed, python_source, safe_text, text_literal, writable, write_python

__all__ = ["FORMATS", "FILES", "export", "write_python", "python_source", "parse_formats", "resolve_source",
           "check_class_name", "check_onnx", "model_with_weights", "safe_text", "text_literal"]

FORMATS = ("py", "yaml", "weights", "torchscript", "onnx")
FILES = {"py": "model.py", "yaml": "arch.yaml", "weights": "weights.pt", "torchscript": "model.torchscript.pt",
         "onnx": "model.onnx"}


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """`py,onnx` (or a list) → the formats, validated, without repeats."""
    items = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    if not items:
        raise SpecError("no export format given", "--format", f"choose from {', '.join(FORMATS)}")
    for item in items:
        if item not in FORMATS:
            raise SpecError(f"unknown export format '{safe_text(item)}'", "--format",
                            did_you_mean(item, FORMATS) or f"choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(items))


def export(arch: Arch, out_dir: str | Path, formats: Iterable[str] | str = ("py", "yaml", "weights"),
           class_name: str = "Net", weights: Any = None, seed: int = 0,
           log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write `arch` in each of `formats` into `out_dir`; returns {format: path}.

    `weights`: None (fresh, `nas.build(arch, seed=seed)`), a state_dict file, a state_dict, or a callable
    `(arch, model) -> state_dict`. Every written format holds those weights (the .py file holds none: load
    weights.pt into it)."""
    import torch

    from nas.cost import count_model
    from nas.dsl import dump

    arch = fixed(arch)
    formats = parse_formats(formats)
    check_class_name(class_name)
    out = Path(out_dir)
    writable(out)
    model = model_with_weights(arch, weights, seed)
    shape = arch.plan().input_shape
    example = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
    written = {}
    for fmt in formats:
        path = out / FILES[fmt]
        if fmt == "py":
            cost = count_model(model, shape).total
            write_python(arch, path, class_name, cost=cost)
        elif fmt == "yaml":
            dump(arch, path, header="exported by nas")
        elif fmt == "weights":
            torch.save(model.state_dict(), path)
        elif fmt == "torchscript":
            write_torchscript(model, example, path)
        elif fmt == "onnx":
            write_onnx(model, example, path)
        written[fmt] = path
        if log:
            log(f"{fmt:12} {path}")
    return written


def resolve_source(source: str) -> tuple[Arch, Path | None]:
    """SOURCE of `nas export`: a run folder (`arch.yaml` + `weights.pt`, or `best/` inside one, or a search's
    `best.arch.yaml`), an architecture file or a zoo name. Returns the arch and the run's weights file (None if it has none)."""
    from nas.dsl import load
    from nas.zoo import resolve_source as find

    path = Path(source)
    if path.is_dir() and (path / "best.arch.yaml").is_file():  # a `nas search` run folder: its best trial
        return load(path / "best.arch.yaml"), None
    if path.is_dir():
        for folder in (path / "best", path):
            if (folder / "arch.yaml").is_file():
                weights = folder / "weights.pt"
                return load(folder / "arch.yaml"), weights if weights.is_file() else None
        raise SpecError("not a run folder (no arch.yaml nor best/arch.yaml)", str(path),
                        "give an architecture file, a zoo name, or a run folder")
    return load(find(source)), None
