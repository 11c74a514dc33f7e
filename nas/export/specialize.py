"""Copy only the branches an architecture takes: an op class's constructor `if`s, decided by its arguments.

`specialize(text, calls)` gets the source of one op class and the full keyword arguments of every call the
exported network makes to it. In `__init__`, an `if`/`elif`/`else` chain whose tests read only constructor
arguments is cut down to the branches some call takes; when every call takes the same branch, its body
stands alone. A chain whose tests read anything else (a local, an attribute) is kept as written. Cut branches
take their references with them, so an architecture without squeeze-excite gets no SqueezeExcite class.
"""
from __future__ import annotations

import ast
import textwrap

_SAFE = (ast.Expression, ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.Name, ast.Constant, ast.Load,
         ast.cmpop, ast.boolop, ast.unaryop, ast.operator, ast.Tuple)


def specialize(text: str, calls: list[dict]) -> str:
    """`text` (one class) with the constructor branches no call takes removed."""
    tree = ast.parse(text)
    cls = tree.body[0]
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if not calls or init is None:
        return text
    params = {a.arg for a in init.args.args + init.args.kwonlyargs} - {"self"}
    lines = text.splitlines(keepends=True)
    edits = [edit for stmt in init.body if isinstance(stmt, ast.If)
             for edit in [_chain_edit(stmt, calls, params, lines)] if edit is not None]
    for start, end, replacement in sorted(edits, reverse=True):
        lines[start:end] = replacement
    return _drop_unused_locals("".join(lines)) if edits else text


def _drop_unused_locals(text: str) -> str:
    """Remove one-line `name = ...` statements of `__init__` whose name a cut branch was the only reader of
    (the op modules compute such locals without side effects: widths, BN settings)."""
    init = next(n for n in ast.parse(text).body[0].body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    reads = {n.id for n in ast.walk(init) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    dead = [stmt.lineno - 1 for stmt in init.body
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id not in reads and stmt.lineno == stmt.end_lineno]
    lines = text.splitlines(keepends=True)
    return "".join(line for i, line in enumerate(lines) if i not in dead)


def _branches(stmt: ast.If, lines: list[str]) -> list[tuple[ast.expr | None, int]]:
    """(test, header line index) of each branch of an if/elif/else chain; the else branch's test is None."""
    out = []
    node = stmt
    while True:
        out.append((node.test, node.lineno - 1))
        rest = node.orelse
        if len(rest) == 1 and isinstance(rest[0], ast.If) and lines[rest[0].lineno - 1].lstrip().startswith("elif"):
            node = rest[0]
            continue
        if rest:
            header = next(i for i in range(rest[0].lineno - 2, node.lineno - 1, -1) if lines[i].strip() == "else:")
            out.append((None, header))
        return out


def _decidable(test: ast.expr | None, params: set[str]) -> bool:
    if test is None:
        return True
    return all(isinstance(n, _SAFE) for n in ast.walk(ast.Expression(test))) and all(
        n.id in params for n in ast.walk(test) if isinstance(n, ast.Name))


def _taken(branches, args: dict) -> int | None:
    for index, (test, _) in enumerate(branches):
        if test is None or eval(compile(ast.Expression(test), "<test>", "eval"), {"__builtins__": {}}, dict(args)):
            return index
    return None


def _chain_edit(stmt: ast.If, calls: list[dict], params: set[str], lines: list[str]):
    """(start, end, new lines) replacing the chain with the branches some call takes, or None to keep it."""
    branches = _branches(stmt, lines)
    if not all(_decidable(test, params) for test, _ in branches):
        return None
    taken = [_taken(branches, args) for args in calls]
    kept = sorted({t for t in taken if t is not None})
    if len(kept) == len(branches):
        return None
    start, end = branches[0][1], stmt.end_lineno
    spans = [(header, branches[i + 1][1] if i + 1 < len(branches) else end)
             for i, (_, header) in enumerate(branches)]
    if not kept:
        return start, end, []
    if len(kept) == 1 and None not in taken:  # every call takes this branch: its body, unconditionally
        header, stop = spans[kept[0]]
        indent = len(lines[header]) - len(lines[header].lstrip())
        body = textwrap.dedent("".join(lines[header + 1:stop]))
        return start, end, [" " * indent + line if line.strip() else line for line in body.splitlines(True)]
    out = []
    for position, index in enumerate(kept):
        header, stop = spans[index]
        block = lines[header:stop]
        if position == 0 and block[0].lstrip().startswith("elif"):
            block = [block[0].replace("elif", "if", 1)] + block[1:]
        if position == 0 and branches[index][0] is None:  # cannot happen: an else first means one branch
            return None
        out += block
    return start, end, out
