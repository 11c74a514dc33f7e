"""The one place where choice names and option keys become module / parameter names.

`nn.Module` and `nn.ParameterDict` refuse dots in names, and option keys such as `"0.25"` or `"h0"` are not
always valid as names either; escaping is reversible (`%` and `.` are percent-encoded), so a state_dict key
of the supernet can always be read back as (module path, option key).
"""
from __future__ import annotations


def escape(name: str) -> str:
    return str(name).replace("%", "%25").replace(".", "%2E")


def unescape(name: str) -> str:
    return name.replace("%2E", ".").replace("%25", "%")


def combo_label(picks: tuple[str, ...]) -> str:
    """Module name of the candidate for one combination of option keys (one key: the key itself)."""
    return ",".join(escape(p) for p in picks) if picks else "fixed"
