"""Where the validation rules live and which one a bad input broke: the `raise SpecError(...)` statements of the
rule modules, found by AST, and the raise site of a caught SpecError, found from its traceback.

A site's key is (module path, "function: message text") — stable under edits elsewhere in the file, unlike
line numbers — so an allowlist of sites no corpus file reaches can be written by hand.
"""
from __future__ import annotations

import ast
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import nas

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(nas.__file__).resolve().parent.parent  # where `nas` is imported from: the checkout, or an install
RULE_MODULES = sorted(str(p.relative_to(CODE)) for p in (CODE / "nas" / "dsl").glob("*.py")) + [
    "nas/recipe.py", "nas/recipe_schema.py", "nas/recipe_sweep.py", "nas/budget.py", "nas/scaling.py"]


@dataclass(frozen=True)
class Site:
    path: str  # relative to the folder `nas` is imported from, e.g. "nas/dsl/plan.py"
    function: str
    message: str  # the message expression's source text, quotes and f prefix stripped
    first_line: int
    last_line: int
    literals: tuple[str, ...]  # the constant text pieces of the message (what a fragment can quote)

    @property
    def key(self) -> tuple[str, str]:
        return self.path, f"{self.function}: {self.message[:60]}"

    def __str__(self) -> str:
        return f"{self.path}:{self.first_line} {self.function}: {self.message[:60]}"


def _message_text(node: ast.expr | None) -> str:
    if node is None:
        return "<no message>"
    text = ast.unparse(node)
    if text[:1] in "fF" and text[1:2] in "'\"":
        text = text[1:]
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def _literals(node: ast.expr | None) -> tuple[str, ...]:
    """Every constant string inside the message expression (f-string pieces, both arms of a conditional)."""
    if node is None:
        return ()
    return tuple(n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str))


def _is_spec_error_call(exc: ast.expr | None) -> bool:
    return isinstance(exc, ast.Call) and isinstance(exc.func, ast.Name) and exc.func.id == "SpecError"


def raise_sites(modules: list[str] = RULE_MODULES) -> list[Site]:
    """Every `raise SpecError(...)` statement, with the innermost function around it."""
    sites: list[Site] = []

    def visit(node: ast.AST, path: str, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, path, child.name)
                continue
            if isinstance(child, ast.Raise) and _is_spec_error_call(child.exc):
                message = child.exc.args[0] if child.exc.args else None
                sites.append(Site(path, function, _message_text(message), child.lineno, child.end_lineno,
                                  _literals(message)))
            visit(child, path, function)

    for path in modules:
        visit(ast.parse((CODE / path).read_text()), path, "<module>")
    return sites


def site_of(err: BaseException, sites: list[Site]) -> Site | str:
    """The raise site of `err`: the deepest traceback frame inside nas/ and the site whose lines hold it; the
    frame as text when no known site holds it (a SpecError raised some other way)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if Path(f.filename).resolve().is_relative_to(CODE / "nas")]
    if not frames:
        return "<no frame inside nas/>"
    frame = frames[-1]
    path = str(Path(frame.filename).resolve().relative_to(CODE))
    for site in sites:
        if site.path == path and site.first_line <= frame.lineno <= site.last_line:
            return site
    return f"{path}:{frame.lineno} (not a `raise SpecError(...)` statement)"


def quotes_the_site(fragment: str, site: Site) -> bool:
    """Does the expected fragment quote the message text of this site (not only the values put into it)?
    It must share with one of the site's constant pieces a run of 10 characters, or the whole piece when it is
    shorter (4 visible characters at least) — so a fragment satisfied by another rule's message is caught."""
    from difflib import SequenceMatcher

    for literal in site.literals:
        piece = literal.strip()
        if len(piece) < 4:
            continue
        match = SequenceMatcher(None, fragment, piece, autojunk=False).find_longest_match()
        if match.size >= min(len(piece), 10):
            return True
    return False


def shown(err) -> str:
    """What the CLI prints after the location: the message and the hint in parentheses."""
    return err.message + (f" ({err.hint})" if err.hint else "")


# -- the corpora -------------------------------------------------------------------------------------------------
DSL_CORPUS = sorted((ROOT / "tests" / "malformed").glob("*.yaml"))
RECIPE_CORPUS = sorted((ROOT / "tests" / "malformed_recipes").glob("*.yaml"))


@dataclass(frozen=True)
class Expectation:
    fragment: str  # a part of what the CLI prints after the location: the message, then (the hint)
    line: int
    hint: str | None = None  # a part of the hint, from an optional second line `# hint: ...`


def expectation(path: Path) -> Expectation:
    """The `# expect: message fragment @ line` header (and optional `# hint: ...` line) of a corpus file."""
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()  # one corpus file is not UTF-8
    match = re.match(r"# expect: (.+) @ (\d+)$", lines[0]) if lines else None
    assert match, f"{path.name} lacks its '# expect: message @ line' header"
    hint = re.match(r"# hint: (.+)$", lines[1]) if len(lines) > 1 else None
    return Expectation(match.group(1), int(match.group(2)), hint.group(1) if hint else None)
