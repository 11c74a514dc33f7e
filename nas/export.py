"""Export an architecture to ship it: arch YAML, standalone PyTorch source, weights, TorchScript, ONNX.

The standalone source is assembled, never templated from spec text: the op classes actually used are
copied from `nas/ops` (our own code, which imports only torch), the network's constructor is written from
the plan as literal calls whose arguments are numbers, booleans and strings from each op's enumerated
choices, and the architecture's YAML rides along as a `repr`-quoted constant. The result is checked with
`ast` before it is written. Its module tree — and so its `state_dict` keys — equals `nas.build(arch)`'s.
"""
from __future__ import annotations

import ast
import inspect
import keyword
import re
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable

from nas.dsl.errors import SpecError, did_you_mean
from nas.dsl.nodes import Arch, Space
from nas.dsl.ops import OPS
from nas.dsl.plan import Plan, Unit

FORMATS = ("py", "yaml", "weights", "torchscript", "onnx")
FILES = {"py": "model.py", "yaml": "arch.yaml", "weights": "weights.pt", "torchscript": "model.torchscript.pt",
         "onnx": "model.onnx"}
_ALLOWED_IMPORTS = {"math", "torch", "torch.nn", "torch.nn.functional", "__future__", "typing"}
_STATE = re.compile(r"^(h[01]|n\d+)$")
_SLOT = re.compile(r"^op\d+$")
_HEADER = '''from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
'''


# -- sources of our own classes --------------------------------------------------------------------------------
def _module_defs(module) -> tuple[dict[str, ast.AST], dict[str, str], list[str]]:
    """Top-level classes/functions of a module: their AST, their source, and the module's imports."""
    source = inspect.getsource(module)
    tree = ast.parse(source)
    defs, texts, imports = {}, {}, []
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            defs[node.name] = node
            texts[node.name] = ast.get_source_segment(source, node)
        elif isinstance(node, ast.Import):
            imports += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not (node.module or "").startswith("nas"):
            imports.append(node.module or "")
    return defs, texts, imports


def _library() -> tuple[list[str], dict[str, ast.AST], dict[str, str]]:
    """Every definition the exporter may copy, in an order where dependencies come first."""
    import importlib
    import pkgutil

    import nas.builder
    import nas.ops
    import nas.ops.common

    modules = [nas.ops.common] + [importlib.import_module(f"nas.ops.{m.name}")
                                  for m in sorted(pkgutil.iter_modules(nas.ops.__path__), key=lambda m: m.name)
                                  if m.name != "common"] + [nas.builder]
    order, defs, texts = [], {}, {}
    for module in modules:
        module_defs, module_texts, imports = _module_defs(module)
        bad = [name for name in imports if name not in _ALLOWED_IMPORTS]
        if bad and module is not nas.builder:
            raise RuntimeError(f"{module.__name__} imports {bad}; op modules may import only torch and math")
        for name in module_defs:
            if name not in defs:
                order.append(name)
            defs[name], texts[name] = module_defs[name], module_texts[name]
    return order, defs, texts


def _names_used(tree: ast.AST) -> set[str]:
    """Names a definition uses at run time (annotations are strings under `from __future__ import annotations`)."""
    used: set[str] = set()

    def visit(node: ast.AST) -> None:
        for field, value in ast.iter_fields(node):
            if field in ("annotation", "returns"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.Name):
                    used.add(child.id)
                if isinstance(child, ast.AST):
                    visit(child)

    visit(tree)
    return used


def _needed(roots: Iterable[str], defs: dict[str, ast.AST]) -> set[str]:
    """The transitive closure of names the root definitions refer to."""
    needed, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in needed or name not in defs:
            continue
        needed.add(name)
        stack.extend(n for n in _names_used(defs[name]) if n in defs)
    return needed


# -- literal arguments ---------------------------------------------------------------------------------------
def _literal(op: str, key: str, value: Any) -> str:
    """One constructor argument as Python source, from the whitelist of value kinds."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return repr(int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise SpecError(f"{op}: '{key}' is not finite", hint="exported code holds only finite numbers")
        return repr(float(value))
    if isinstance(value, str):
        param = OPS[op].params.get(key)
        allowed = param.kind if param is not None and isinstance(param.kind, tuple) else ()
        if value not in allowed:
            raise SpecError(f"{op}: '{key}' = {value!r} is not one of the op's enumerated values",
                            hint="only enumerated strings reach exported code")
        return repr(value)
    raise SpecError(f"{op}: '{key}' has a value of type {type(value).__name__} that cannot be exported")


def _call(unit: Unit, bn: dict, class_of: dict[str, str]) -> str:
    from nas import ops

    op = unit.spec["op"]
    if op not in ops.REGISTRY:
        raise SpecError(f"unknown op '{op}'")
    args = ops.constructor_args(unit.spec, bn)
    text = ", ".join(f"{k}={repr(float(v)) if k in ('bn_eps', 'bn_momentum') else _literal(op, k, v)}"
                     for k, v in args.items())
    return f"{class_of[op]}({text})"


def _state(name: str) -> str:
    if not isinstance(name, str) or not _STATE.match(name):
        raise SpecError(f"cell state '{name}' cannot be exported")
    return repr(name)


def _slot(name: str) -> str:
    if not _SLOT.match(name):
        raise SpecError(f"node slot '{name}' cannot be exported")
    return repr(name)


def _layout(plan: Plan, class_of: dict[str, str], indent: str) -> str:
    """The constructor's argument list: the network laid out as the plan says."""
    call = lambda u: _call(u, plan.bn, class_of)  # noqa: E731
    inner = indent + "    "
    lines = ["stem=["] + [f"    {call(u)}," for u in plan.stem] + ["],"]
    if plan.cells:
        lines.append("body=[")
        for cell in plan.cells:
            if not cell.live:
                lines.append("    DeadCell(),")
                continue
            pre0 = call(cell.pre0) if cell.pre0 is not None else "None"
            pre1 = call(cell.pre1) if cell.pre1 is not None else "None"
            lines.append(f"    CellModule(  # {cell.kind}{' (reduction)' if cell.reduce else ''}, C={cell.channels}")
            lines += [f"        pre0={pre0},", f"        pre1={pre1},", "        nodes=["]
            for node in cell.nodes:
                slots = ", ".join(f"{_slot(u.path.rsplit('.', 1)[1])}: {call(u)}" for _, u in node.inputs)
                sources = ", ".join(_state(source) for source, _ in node.inputs)
                lines.append(f"            Node({{{slots}}}, [{sources}]),")
            lines += ["        ],", f"        concat=[{', '.join(_state(s) for s in cell.concat)}],", "    ),"]
        lines.append("],")
    else:
        lines.append("stages=[")
        for stage in plan.stages:
            lines.append("    Stage([")
            lines += [f"        {call(u)}," for u in stage]
            lines.append("    ]),")
        lines.append("],")
    lines += ["head=["] + [f"    {call(u)}," for u in plan.head] + ["],"]
    return "\n".join(inner + line for line in lines)


def safe_text(text: str, limit: int = 120) -> str:
    """Printable ASCII without quotes or backslashes: safe inside a docstring or comment."""
    cleaned = re.sub(r"[^A-Za-z0-9 _.,:;()+\-/=@]", "_", str(text).encode("ascii", "replace").decode())
    return cleaned[:limit]


def check_class_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise SpecError(f"'{name}' is not a valid Python class name", "--class-name",
                        "use letters, digits and underscores, not starting with a digit")
    if name in _library()[1] or name in ("torch", "nn", "F", "math", "ARCH_YAML"):
        raise SpecError(f"'{name}' is already used by the exported code", "--class-name", "pick another name")
    return name


def python_source(arch: Arch, class_name: str = "Net") -> str:
    """Standalone PyTorch source for `arch` (imports torch only)."""
    from nas import ops
    from nas.cost import count_arch
    from nas.dsl import dumps

    arch = _fixed(arch)
    class_name = check_class_name(class_name)
    plan = arch.plan()
    order, defs, texts = _library()
    used_ops = sorted({u.op for u in plan.units()})
    class_of = {op: ops.REGISTRY[op].__name__ for op in used_ops}
    structure = ["Network", "CellModule", "Node", "DeadCell"] if plan.cells else ["Network", "Stage"]
    needed = _needed(list(class_of.values()) + structure, defs)
    cost = count_arch(arch).total
    name = safe_text(arch.name)
    doc = (f'"""{name}: standalone PyTorch model exported by nas.\n\n'
           f"Input {plan.input_shape[0]}x{plan.input_shape[1]}x{plan.input_shape[2]}, {plan.classes} classes, "
           f"{cost.params:,} parameters, {cost.flops:,.0f} multiply-adds.\n"
           f"Needs only torch: `from model import {class_name}; net = {class_name}()`. The architecture it was\n"
           f'written from is ARCH_YAML below.\n"""\n')
    blocks = [doc, _HEADER]
    blocks += [textwrap.dedent(texts[n]) for n in order if n in needed]
    blocks.append(f"ARCH_YAML = {dumps(arch)!r}\n")
    blocks.append(f"class {class_name}(Network):\n"
                  f'    """{name} ({cost.params:,} parameters); module names match nas.build()."""\n\n'
                  f"    def __init__(self):\n"
                  f"        super().__init__(\n{_layout(plan, class_of, '        ')}\n        )\n")
    source = "\n\n".join(block.rstrip() + "\n" for block in blocks)
    _verify(source, class_name)
    return source


def _verify(source: str, class_name: str) -> None:
    """Defence in depth: the module parses, imports only torch/math, and defines only what we put there."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name not in _ALLOWED_IMPORTS for a in node.names):
            raise RuntimeError("generated code imports something other than torch")
        if isinstance(node, ast.ImportFrom) and node.module not in _ALLOWED_IMPORTS:
            raise RuntimeError("generated code imports something other than torch")
    top = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom, ast.Expr))]
    names = [n.targets[0].id if isinstance(n, ast.Assign) else n.name for n in top]
    expected = set(_library()[1]) | {"ARCH_YAML", class_name}
    if not set(names) <= expected:
        raise RuntimeError(f"generated code defines unexpected names: {set(names) - expected}")
    compile(tree, "model.py", "exec")


def _fixed(arch: Space) -> Arch:
    if arch.choices():
        raise SpecError(f"'{arch.name}' is a search space with {len(arch.choices())} choices", arch.file,
                        "export one architecture: `nas show FILE --sample SEED`, or space.resolve(...)")
    return arch


def write_python(arch: Arch, path: str | Path, class_name: str = "Net") -> Path:
    path = Path(path)
    text = python_source(arch, class_name)
    _writable(path.parent)
    path.write_text(text, encoding="utf-8")
    return path


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".nas-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SpecError(f"cannot write there ({err.strerror})", str(folder), "choose another -o folder") from None


# -- the other formats ---------------------------------------------------------------------------------------
def parse_formats(text: str | Iterable[str]) -> list[str]:
    items = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    if not items:
        raise SpecError("no export format given", "--format", f"choose from {', '.join(FORMATS)}")
    for item in items:
        if item not in FORMATS:
            raise SpecError(f"unknown export format '{item}'", "--format", did_you_mean(item, FORMATS))
    return list(dict.fromkeys(items))


def _state_dict(arch: Arch, weights: Any, seed: int) -> dict:
    """Weights: a state_dict, a path to one, a callable (arch, model) -> state_dict (e.g. from a supernet),
    or None for a fresh initialization with `seed`."""
    import nas
    from nas.train import load_weights

    model = nas.build(arch, seed=seed)
    if weights is None:
        return model.state_dict()
    if callable(weights):
        weights = weights(arch, model)
    if isinstance(weights, (str, Path)):
        load_weights(weights, model)
        return model.state_dict()
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise SpecError(f"weights do not fit the architecture: {str(err).splitlines()[0]}") from None
    return model.state_dict()


def export(arch: Arch, out_dir: str | Path, formats: Iterable[str] | str = ("py", "yaml", "weights"),
           class_name: str = "Net", weights: Any = None, seed: int = 0,
           log: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write `arch` in each format into `out_dir`; returns {format: path}."""
    import torch

    import nas
    from nas.dsl import dump

    arch = _fixed(arch)
    formats = parse_formats(formats)
    check_class_name(class_name)
    out = Path(out_dir)
    _writable(out)
    state = _state_dict(arch, weights, seed)
    model = nas.build(arch)
    model.load_state_dict(state)
    model.eval()
    example = torch.randn(1, *arch.plan().input_shape, generator=torch.Generator().manual_seed(seed))
    written = {}
    for fmt in formats:
        path = out / FILES[fmt]
        if fmt == "py":
            write_python(arch, path, class_name)
        elif fmt == "yaml":
            dump(arch, path, header="exported by nas")
        elif fmt == "weights":
            torch.save(state, path)
        elif fmt == "torchscript":
            _torchscript(model, example, path)
        elif fmt == "onnx":
            _onnx(model, example, path)
        written[fmt] = path
        if log:
            log(f"{fmt:12} {path}")
    return written


def _torchscript(model, example, path: Path) -> None:
    """TorchScript by tracing; the traced outputs are checked. Torch 2.13 marks all of torch.jit deprecated in
    favour of torch.export; TorchScript is still what many deployment runtimes load, so the notice is muted here."""
    import warnings

    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        if not torch.allclose(traced(example), model(example), atol=1e-5, rtol=1e-4):
            raise RuntimeError("the traced TorchScript module disagrees with the model")
    traced.save(str(path))


def _onnx(model, example, path: Path) -> None:
    """ONNX (opset 17, batch axis dynamic); with onnxruntime installed, outputs are checked against torch."""
    import torch

    try:
        import onnx  # noqa: F401
    except ImportError:
        raise SpecError("ONNX export needs the onnx package", "--format", "pip install 'nas[onnx]'") from None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    check_onnx(model, example, path)


def check_onnx(model, example, path: Path, atol: float = 1e-4) -> float | None:
    """Max |ONNX − torch| on `example` when onnxruntime is installed (None when it is not)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    import numpy as np
    import torch

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": example.numpy()})[0]
    with torch.no_grad():
        want = model(example).numpy()
    error = float(np.abs(got - want).max())
    if error > atol:
        raise RuntimeError(f"the ONNX graph disagrees with torch by {error:.2e}")
    return error


def resolve_source(source: str) -> tuple[Arch, Path | None]:
    """SOURCE of `nas export`: a run folder (its arch and weights), an architecture file or a zoo name."""
    from nas.dsl import load
    from nas.zoo import resolve_source as find

    path = Path(source)
    if path.is_dir():
        for folder in (path / "best", path):
            if (folder / "arch.yaml").is_file():
                weights = folder / "weights.pt"
                return load(folder / "arch.yaml"), weights if weights.is_file() else None
        raise SpecError("not a run folder (no arch.yaml)", str(path), "give an architecture file or a zoo name")
    return load(find(source)), None
