"""Standalone PyTorch source for an Arch: assembled, never templated from spec text.

The op classes actually used are copied from `nas/ops` (our own code, which imports only torch), with the
helpers and structural classes (`Stage`, `Network`, `CellModule`, ...) they need; the network's constructor
is written from the plan as literal calls whose arguments are numbers, booleans and strings from each op's
enumerated values. The only free text — the architecture's name and YAML — goes into string literals through
`text_literal`, whose escaping is checked by evaluating it back. The whole module is checked with `ast` before
it is returned. Its module tree, and so its `state_dict` keys, equals `nas.build(arch)`'s.
"""
from __future__ import annotations

import ast
import functools
import inspect
import keyword
import re
import textwrap
from pathlib import Path
from typing import Iterable

from nas.dsl.errors import SpecError
from nas.dsl.nodes import Arch, Space
from nas.dsl.plan import Plan
from nas.export.layout import WIDTH, layout
from nas.export.text import safe_text, text_literal

ALLOWED_IMPORTS = {"math", "torch", "torch.nn", "torch.nn.functional", "__future__", "typing"}
_CONSTANTS = ("INPUT_SIZE", "INPUT_CHANNELS", "MEAN", "STD", "CLASSES")  # the preprocessing, when recorded
_RESERVED = {"torch", "nn", "F", "math", "annotations", "ARCH_YAML", "preprocess", *_CONSTANTS}
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9 _.,+-]{0,60}$")
# The imports model.py may need, by the name each binds; only those its code uses are written.
_IMPORTS = {"math": "import math", "torch": "import torch", "F": "import torch.nn.functional as F",
            "nn": "from torch import nn"}


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


@functools.lru_cache(maxsize=1)
def _library() -> tuple[tuple[str, ...], dict[str, ast.AST], dict[str, str]]:
    """Every definition the exporter may copy, in an order where dependencies come first."""
    import importlib
    import pkgutil

    import nas.builder
    import nas.dsl.rounding
    import nas.ops
    import nas.ops.common

    # nas.dsl.rounding first: the ops call its rounding rule, which is defined once, on the DSL's side.
    modules = [nas.dsl.rounding, nas.ops.common] + [importlib.import_module(f"nas.ops.{m.name}")
                                  for m in sorted(pkgutil.iter_modules(nas.ops.__path__), key=lambda m: m.name)
                                  if m.name != "common"] + [nas.builder]
    order, defs, texts = [], {}, {}
    for module in modules:
        module_defs, module_texts, imports = _module_defs(module)
        bad = [name for name in imports if name not in ALLOWED_IMPORTS]
        if bad and module is not nas.builder:  # the builder's own imports are not copied, only its classes
            raise RuntimeError(f"{module.__name__} imports {bad}; op modules may import only torch and math")
        for name in module_defs:
            if name not in defs:
                order.append(name)
            defs[name], texts[name] = module_defs[name], module_texts[name]
    return tuple(order), defs, texts


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
    """The transitive closure of the definitions the roots refer to."""
    needed, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in needed or name not in defs:
            continue
        needed.add(name)
        stack.extend(n for n in _names_used(defs[name]) if n in defs)
    return needed


def check_class_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise SpecError(f"'{name}' is not a valid Python class name", "--class-name",
                        "use ASCII letters, digits and underscores, not starting with a digit")
    if name in _library()[1] or name in _RESERVED:
        raise SpecError(f"'{name}' is already used by the exported code", "--class-name", "pick another name")
    return name


# -- the module --------------------------------------------------------------------------------------------------
def fixed(arch: Space) -> Arch:
    if not isinstance(arch, Space):
        raise TypeError(f"expected an Arch, got {type(arch).__name__}")
    return arch.require_fixed("pick one: `nas export FILE --sample SEED` (`nas show FILE --sample SEED` "
                              "prints it), or space.resolve(...) in Python")


def python_source(arch: Arch, class_name: str = "Net", cost=None) -> str:
    """Standalone PyTorch source for `arch` (imports torch only). `cost` (a nas.cost Cost with params and
    flops) saves counting it again when the caller already has it."""
    from nas import ops
    from nas.dsl import dumps

    arch = fixed(arch)
    class_name = check_class_name(class_name)
    plan = arch.plan()
    order, defs, texts = _library()
    used_ops = sorted({u.op for u in plan.units()})
    unknown = [op for op in used_ops if op not in ops.REGISTRY]
    if unknown:
        raise SpecError(f"unknown op '{safe_text(unknown[0])}'")
    class_of = {op: ops.REGISTRY[op].__name__ for op in used_ops}
    if plan.cells:
        network = "CellNetwork"
        structure = [network, "CellModule", "Node"] + (["DeadCell"] if not all(c.live for c in plan.cells) else [])
    else:
        network, structure = "Network", ["Network", "Stage"]
    record = arch.doc.get("preprocess")
    roots = list(class_of.values()) + structure + (["preprocess_images"] if record else [])
    defs, texts = _specialized(plan, class_of, _needed(roots, defs), defs, texts)
    needed = _needed(roots, defs)
    if cost is None:
        from nas.cost import count_arch
        cost = count_arch(arch).total
    name = safe_text(arch.name)
    c, h, w = plan.input_shape
    yaml_text = dumps(arch)
    summary = (f"{name}: standalone PyTorch model exported by nas.\n\n"
               f"Input {c}x{h}x{w}, {plan.classes} classes, {int(cost.params):,} parameters, "
               f"{float(cost.flops):,.0f} multiply-adds.\n"
               f"Needs only torch: `from model import {class_name}; net = {class_name}()`; its state_dict keys\n"
               f"are those of nas.build(arch).\n\n{_input_doc(record, class_name)}\n\n"
               f"The architecture (also in ARCH_YAML):\n\n")
    blocks = [textwrap.dedent(texts[n]) for n in order if n in needed]
    blocks.append(f"ARCH_YAML = {text_literal(yaml_text)}\n")
    if record:
        blocks.append(_preprocess_block(record))
    blocks.append(f"class {class_name}({network}):\n"
                  f'    """{name}: {int(cost.params):,} parameters; module names match nas.build()."""\n\n'
                  f"    def __init__(self):\n"
                  f"        super().__init__(\n{layout(plan, class_of, '        ')}\n        )\n")
    blocks = [text_literal(summary + yaml_text), _header(blocks)] + blocks
    source = "\n\n".join(block.rstrip() + "\n" for block in blocks)
    _verify(source, class_name, summary + yaml_text, yaml_text, record)
    return source


def _specialized(plan: Plan, class_of: dict[str, str], needed: set[str], defs: dict, texts: dict):
    """Definitions and sources with each op class cut to the constructor branches this network takes
    (`nas.export.specialize`); a class that other copied code also calls stays whole."""
    from nas import ops
    from nas.export.specialize import specialize

    called_elsewhere = {name for other in needed for name in _names_used(defs[other]) if name != other}
    calls: dict[str, list[dict]] = {}
    for unit in plan.units():
        cls = ops.REGISTRY[unit.op]
        defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
        calls.setdefault(class_of[unit.op], []).append({**defaults, **ops.constructor_args(unit.spec, plan.bn)})
    defs, texts = dict(defs), dict(texts)
    for name, args in calls.items():
        if name in called_elsewhere or "__init__" not in {n.name for n in defs[name].body
                                                          if isinstance(n, ast.FunctionDef)}:
            continue
        texts[name] = specialize(textwrap.dedent(texts[name]), args)
        defs[name] = ast.parse(texts[name]).body[0]
    return defs, texts


def _header(blocks: list[str]) -> str:
    """`from __future__ import annotations` and the imports the code uses (annotations count, as for pyflakes)."""
    used = _names_used_anywhere(ast.parse("\n\n".join(blocks)))
    lines = ["from __future__ import annotations", ""]
    lines += [_IMPORTS[name] for name in ("math", "torch", "F") if name in used]
    if "nn" in used:
        lines.append(_IMPORTS["nn"])
    return "\n".join(lines) + "\n"


def _names_used_anywhere(tree: ast.AST) -> set[str]:
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def _input_doc(record: dict | None, class_name: str) -> str:
    if not record:
        text = ("Inputs: no preprocessing was recorded (the architecture was not trained by `nas train`); "
                "the network takes float N x C x H x W tensors as described in ARCH_YAML.")
        return textwrap.fill(text, WIDTH)
    mean = ", ".join(f"{v:g}" for v in record["mean"])
    std = ", ".join(f"{v:g}" for v in record["std"])
    grey = f", repeats grey images to {record['channels']} channels" if record["channels"] > 1 else ""
    text = (f"Inputs: `{class_name}()(preprocess(images))`. `preprocess` takes uint8 (0-255) or float (0-1) "
            f"images, N x C x H x W, N x H x W x C or N x H x W, of any size; resizes them (bilinear, "
            f"antialiased) to {record['size']} x {record['size']}{grey} and normalizes them with the "
            f"training split's mean ({mean}) and std ({std}), as it was trained: the constants INPUT_SIZE, "
            f"INPUT_CHANNELS, MEAN, STD" + (" and CLASSES (the class names)." if record.get("classes") else "."))
    return textwrap.fill(text, WIDTH, break_on_hyphens=False)


def _name_literal(name: str) -> str:
    """A class name as a string literal: plain names as they are, anything else through `text_literal`."""
    return repr(name) if _PLAIN_NAME.match(name) else text_literal(name)


def _preprocess_block(record: dict) -> str:
    """Constants of the recorded preprocessing (numbers, and class names as checked literals) and `preprocess`."""
    def floats(values) -> str:
        return repr(tuple(float(v) for v in values))

    lines = [f"INPUT_SIZE = {int(record['size'])}", f"INPUT_CHANNELS = {int(record['channels'])}",
             f"MEAN = {floats(record['mean'])}", f"STD = {floats(record['std'])}"]
    if record.get("classes"):
        names = [_name_literal(str(n)) for n in record["classes"]]
        one_line = f"CLASSES = ({', '.join(names)},)"
        lines += [one_line] if len(one_line) <= 100 else ["CLASSES = ("] + [f"    {n}," for n in names] + [")"]
    lines += ["", "", "def preprocess(images) -> torch.Tensor:",
              '    """Raw images -> this network\'s input (see the module docstring)."""',
              "    return preprocess_images(images, INPUT_SIZE, INPUT_CHANNELS, MEAN, STD)"]
    return "\n".join(lines) + "\n"


def _verify(source: str, class_name: str, doc: str, yaml_text: str, record: dict | None = None) -> None:
    """Defence in depth: the module parses, imports only torch/math, defines only what we put there, and its
    docstring and ARCH_YAML hold exactly the text we meant."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name not in ALLOWED_IMPORTS for a in node.names):
            raise RuntimeError("generated code imports something other than torch")
        if isinstance(node, ast.ImportFrom) and node.module not in ALLOWED_IMPORTS:
            raise RuntimeError("generated code imports something other than torch")
    if ast.get_docstring(tree, clean=False) != doc:
        raise RuntimeError("generated docstring does not hold the intended text")
    top = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))][1:]
    record = record or {}
    constants = {"ARCH_YAML": yaml_text, "INPUT_SIZE": record.get("size"), "INPUT_CHANNELS": record.get("channels"),
                 "MEAN": tuple(record.get("mean", ())), "STD": tuple(record.get("std", ())),
                 "CLASSES": tuple(record.get("classes", ()))}
    names = []
    for node in top:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            names.append(name)
            if name not in constants or ast.literal_eval(node.value) != constants[name]:
                raise RuntimeError(f"generated {name} does not hold the intended value")
        elif isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.append(node.name)
        else:
            raise RuntimeError(f"generated code has an unexpected top-level {type(node).__name__}")
    expected = set(_library()[1]) | {"ARCH_YAML", class_name} | ({"preprocess", *_CONSTANTS} if record else set())
    if not set(names) <= expected:
        raise RuntimeError(f"generated code defines unexpected names: {set(names) - expected}")
    compile(tree, "model.py", "exec")


def writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".nas-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SpecError(f"cannot write there ({err.strerror})", str(folder), "choose another -o folder") from None


def write_python(arch: Arch, path: str | Path, class_name: str = "Net", cost=None) -> Path:
    """Write `python_source(arch, class_name)` to `path`; returns the path."""
    from nas.dsl import write_text_atomic

    path = Path(path)
    text = python_source(arch, class_name, cost)
    writable(path.parent)
    write_text_atomic(path, text)
    return path
