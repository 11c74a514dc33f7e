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
from nas.export.source import check_class_name, fixed, python_source, safe_text, text_literal, write_python
from nas.runs import RunDir

__all__ = ["FORMATS", "FILES", "export", "write_python", "python_source", "parse_formats", "resolve_source",
           "check_class_name", "check_onnx", "model_with_weights", "safe_text", "text_literal"]

FORMATS = ("py", "yaml", "weights", "torchscript", "onnx")
FILES = {"py": "model.py", "yaml": "arch.yaml", "weights": "weights.pt", "torchscript": "model.torchscript.pt",
         "onnx": "model.onnx"}
SIDECAR = "preprocess.json"  # what the TorchScript and ONNX files expect, beside them


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


def export(arch: Arch, out_dir: str | Path | RunDir, formats: Iterable[str] | str = ("py", "yaml", "weights"),
           class_name: str = "Net", weights: Any = None, seed: int = 0,
           log: Callable[[str], None] | None = None, overwrite: bool = False) -> dict[str, Path]:
    """Write `arch` in each of `formats` into `out_dir`; returns {format: path}.

    `out_dir` becomes an export run folder (`nas.runs`: locked, every file atomic, never written through a
    link); an existing one is refused unless `overwrite`. An open `RunDir` is written into as it is.
    `weights`: None (fresh, `nas.build(arch, seed=seed)`), a state_dict file, a state_dict, or a callable
    `(arch, model) -> state_dict`. Every written format holds those weights (the .py file holds none: load
    weights.pt into it)."""
    import torch

    from nas.cost import count_model
    from nas.dsl import dumps

    arch = fixed(arch)
    formats = parse_formats(formats)
    check_class_name(class_name)
    model = model_with_weights(arch, weights, seed)  # bad weights fail before the folder is made
    shape = arch.plan().input_shape
    example = torch.randn(1, *shape, generator=torch.Generator().manual_seed(seed))
    written = {}
    run = out_dir if isinstance(out_dir, RunDir) else RunDir.create(out_dir, kind="export", overwrite=overwrite)
    try:
        for fmt in formats:
            name = FILES[fmt]
            if fmt == "py":
                cost = count_model(model, shape).total
                path = run.write_text(name, python_source(arch, class_name, cost))
            elif fmt == "yaml":
                path = run.write_text(name, dumps(arch, header="exported by nas"))
            elif fmt == "weights":
                path = run.save_torch(name, model.state_dict())
            elif fmt == "torchscript":
                path = _through_file(run, name, lambda p: write_torchscript(model, example, p))
            else:
                path = _through_file(run, name, lambda p: write_onnx(model, example, p))
            written[fmt] = path
            if log:
                log(f"{fmt:12} {path}")
        if {"torchscript", "onnx"} & set(formats):
            path = run.write_json(SIDECAR, sidecar(arch))
            if log:
                log(f"{'preprocess':12} {path}")
    finally:
        if run is not out_dir:
            run.close()
    return written


def _through_file(run: RunDir, name: str, write: Callable[[Path], Any]) -> Path:
    """For writers that need a file name: write a scratch file in the folder, then put it in place atomically."""
    scratch = run.file(f".{name}.scratch")
    try:
        write(scratch)
        return run.write_bytes(name, scratch.read_bytes())
    finally:
        scratch.unlink(missing_ok=True)


def sidecar(arch: Arch) -> dict:
    """preprocess.json: the input the TorchScript/ONNX graphs take and how raw images get there."""
    c, h, w = arch.plan().input_shape
    record = arch.doc.get("preprocess")
    info = {"input": {"name": "image", "shape": ["batch", c, h, w], "dtype": "float32", "layout": "NCHW"},
            "output": {"name": "logits", "shape": ["batch", arch.doc["classes"]]}}
    if record:
        info["preprocess"] = {**record, "steps": [
            "images as float in [0, 1] (uint8 / 255)", f"resize to {h}x{w} ({record['resize']})",
            f"repeat grey images to {c} channels", "subtract mean and divide by std, per channel"]}
    else:
        info["preprocess"] = None
        info["note"] = "no preprocessing was recorded: the architecture was not trained by `nas train`"
    return info


def resolve_source(source: str) -> tuple[Arch, Path | None]:
    """SOURCE of `nas export`: a run folder (`arch.yaml` + `weights.pt`, or `best/` inside one, or a search's
    `best.arch.yaml`), an architecture file or a zoo name. Returns the arch and the run's weights file (None if it has none)."""
    from nas.dsl import load
    from nas.zoo import resolve_source as find

    path = Path(source)
    trained = path / "best" / "weights.pt"
    if path.is_dir() and (path / "best.arch.yaml").is_file() and not trained.is_file():
        return load(path / "best.arch.yaml"), None  # a `nas search` run folder: its best trial, untrained
    # (a DNAS run with `retrain:` has the same architecture in best/ with its retrained weights: take those)
    if path.is_dir():
        for folder in (path / "best", path):
            if (folder / "arch.yaml").is_file():
                weights = folder / "weights.pt"
                return load(folder / "arch.yaml"), weights if weights.is_file() else None
        raise SpecError("not a run folder (no arch.yaml nor best/arch.yaml)", str(path),
                        "give an architecture file, a zoo name, or a run folder")
    return load(find(source)), None
