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
from typing import Any, Iterable

from nas.dsl.errors import SpecError
from nas.dsl.nodes import Arch, Space
from nas.dsl.ops import OPS
from nas.dsl.plan import Plan, Unit

ALLOWED_IMPORTS = {"math", "torch", "torch.nn", "torch.nn.functional", "__future__", "typing"}
_CONSTANTS = ("INPUT_SIZE", "INPUT_CHANNELS", "MEAN", "STD", "CLASSES")  # the preprocessing, when recorded
_RESERVED = {"torch", "nn", "F", "math", "annotations", "ARCH_YAML", "preprocess", *_CONSTANTS}
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9 _.,+-]{0,60}$")
_STATE = re.compile(r"^(h[01]|n\d+)$")
_SLOT = re.compile(r"^op\d+$")
_SHOWN = {"c_in", "c", "k", "e", "s"}  # written even when they equal the constructor's default
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
    import nas.ops
    import nas.ops.common

    modules = [nas.ops.common] + [importlib.import_module(f"nas.ops.{m.name}")
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


# -- text that may come from a spec ----------------------------------------------------------------------------
def safe_text(text: str, limit: int = 120) -> str:
    """Printable ASCII without quotes or backslashes (a one-line summary of a name)."""
    cleaned = re.sub(r"[^A-Za-z0-9 _.,:;()+\-/=@]", "_", str(text).encode("ascii", "replace").decode())
    return cleaned[:limit]


def text_literal(text: str) -> str:
    """A triple-quoted literal that evaluates to exactly `text` and stays readable: printable ASCII and
    newlines as they are; backslashes, quotes and every other character escaped. Nothing in `text` can end
    the literal early, and this is checked by evaluating the literal back."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n" or " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    literal = '"""' + "".join(out) + '"""'
    if ast.literal_eval(literal) != text:  # defence in depth
        raise RuntimeError("text_literal failed to round-trip")
    return literal


def check_class_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise SpecError(f"'{name}' is not a valid Python class name", "--class-name",
                        "use ASCII letters, digits and underscores, not starting with a digit")
    if name in _library()[1] or name in _RESERVED:
        raise SpecError(f"'{name}' is already used by the exported code", "--class-name", "pick another name")
    return name


# -- literal constructor calls ---------------------------------------------------------------------------------
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
            raise SpecError(f"{op}: '{key}' = {safe_text(value)!r} is not one of the op's enumerated values",
                            hint="only enumerated strings reach exported code")
        return repr(value)
    raise SpecError(f"{op}: '{key}' has a value of type {type(value).__name__} that cannot be exported")


def _call(unit: Unit, bn: dict, class_of: dict[str, str]) -> str:
    from nas import ops

    op = unit.spec["op"]
    if op not in ops.REGISTRY or op not in class_of:
        raise SpecError(f"unknown op '{safe_text(op)}'")
    args = ops.constructor_args(unit.spec, bn)
    signature = inspect.signature(ops.REGISTRY[op].__init__).parameters
    parts = []
    for key in ["c_in"] + [k for k in args if k != "c_in"]:  # c_in first, then the op's parameters
        if key not in args:
            continue
        value = args[key]
        if not key.isidentifier() or keyword.iskeyword(key) or key not in signature:
            raise SpecError(f"{op}: parameter '{safe_text(key)}' cannot be exported")
        default = signature[key].default
        if key not in _SHOWN and type(value) is type(default) and value == default:
            continue  # the class's own default: leave it out, for readability
        parts.append(f"{key}={_number(value) if key in ('bn_eps', 'bn_momentum') else _literal(op, key, value)}")
    return f"{class_of[op]}({', '.join(parts)})"


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise SpecError(f"bn setting {safe_text(repr(value))} is not a number")
    return repr(float(value))


def _state(name: str) -> str:
    if not isinstance(name, str) or not _STATE.match(name):
        raise SpecError(f"cell state '{safe_text(name)}' cannot be exported")
    return repr(name)


def _slot(name: str) -> str:
    if not _SLOT.match(name):
        raise SpecError(f"node slot '{safe_text(name)}' cannot be exported")
    return repr(name)


def _layout(plan: Plan, class_of: dict[str, str], indent: str) -> str:
    """The constructor's arguments: the network laid out as the plan says."""
    call = lambda u: _call(u, plan.bn, class_of)  # noqa: E731
    lines = ["stem=["] + [f"    {call(u)}," for u in plan.stem] + ["],"]
    if plan.cells:
        lines.append("body=[")
        for i, cell in enumerate(plan.cells):
            if not cell.live:
                lines.append(f"    DeadCell(),  # {i}: nothing reads this cell's output")
                continue
            pre0 = call(cell.pre0) if cell.pre0 is not None else "None"
            pre1 = call(cell.pre1) if cell.pre1 is not None else "None"
            kind = "reduction" if cell.reduce else "normal"
            lines.append(f"    CellModule(  # {i}: {kind} cell, C={int(cell.channels)}")
            lines += [f"        pre0={pre0},", f"        pre1={pre1},", "        nodes=["]
            for node in cell.nodes:
                slots = ", ".join(f"{_slot(u.path.rsplit('.', 1)[1])}: {call(u)}" for _, u in node.inputs)
                sources = ", ".join(_state(source) for source, _ in node.inputs)
                lines.append(f"            Node({{{slots}}}, [{sources}]),")
            lines += ["        ],", f"        concat=[{', '.join(_state(s) for s in cell.concat)}],", "    ),"]
        lines.append("],")
    else:
        lines.append("stages=[")
        for i, stage in enumerate(plan.stages):
            lines.append(f"    Stage([  # {i}")
            lines += [f"        {call(u)}," for u in stage]
            lines.append("    ]),")
        lines.append("],")
    lines += ["head=["] + [f"    {call(u)}," for u in plan.head] + ["],"]
    return "\n".join(wrapped for line in lines for wrapped in _wrap(indent + "    " + line))


_OPEN, _CLOSE = "([{", ")]}"
WIDTH = 100  # columns of model.py


def _wrap(line: str) -> list[str]:
    """A generated line of nested calls, lists and dicts, broken after commas to fit WIDTH: items continue
    under the first one, inside the first bracket whose contents split (its arguments, a Node's ops)."""
    if len(line) <= WIDTH:
        return [line]
    for start, ch in enumerate(line):
        if ch not in _OPEN:
            continue
        end, items = _split_items(line, start)
        if end is None or len(items) < 2:
            continue
        head, tail, pad = line[:start + 1], line[end:], " " * (start + 1)
        rows, row = [], head
        for k, item in enumerate(items):
            piece = item + ("," if k < len(items) - 1 else tail)
            if row not in (head, pad) and len(row) + 1 + len(piece) > WIDTH:
                rows.append(row.rstrip())
                row = pad + piece
            else:
                row += ("" if row in (head, pad) else " ") + piece
        rows.append(row)
        return [part for row in rows for part in (_wrap(row) if row != line else [row])]
    return [line]


def _split_items(line: str, start: int) -> tuple[int | None, list[str]]:
    """The index of the bracket closing the one at `start`, and the top-level items between them."""
    depth, items, current, quote = 0, [], "", None
    for i in range(start, len(line)):
        ch = line[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
            if depth == 1:
                continue
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                items.append(current.strip())
                return i, [item for item in items if item]
        elif ch == "," and depth == 1:
            items.append(current.strip())
            current = ""
            continue
        current += ch
    return None, []


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
    needed = _needed(list(class_of.values()) + structure + (["preprocess_images"] if record else []), defs)
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
                  f"        super().__init__(\n{_layout(plan, class_of, '        ')}\n        )\n")
    blocks = [text_literal(summary + yaml_text), _header(blocks)] + blocks
    source = "\n\n".join(block.rstrip() + "\n" for block in blocks)
    _verify(source, class_name, summary + yaml_text, yaml_text, record)
    return source


def _header(blocks: list[str]) -> str:
    """`from __future__ import annotations` and the imports the code uses (annotations count, as for pyflakes)."""
    used = _names_used_anywhere(ast.parse("\n\n".join(blocks)))
    lines = ["from __future__ import annotations", ""]
    lines += [_IMPORTS[name] for name in ("math", "torch", "F") if name in used]
    if "nn" in used:
        lines += ["", _IMPORTS["nn"]]
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
    path = Path(path)
    text = python_source(arch, class_name, cost)
    writable(path.parent)
    path.write_text(text, encoding="utf-8")
    return path
