"""Free text from a spec on its way into generated code: a safe one-line summary, or a checked literal."""
from __future__ import annotations

import ast
import re


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
