"""The model zoo: fixed architectures written in the DSL, one file each under search_spaces/zoo/.

`load("resnet50")` returns the Arch; `resolve_source(text)` accepts either a file path or a zoo name (and the
short aliases such as b0), which is what every CLI command that takes an architecture uses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nas.dsl.errors import SpecError, did_you_mean

ALIASES = {"b0": "efficientnet_b0"}
# B1…B7 are not files: compound scaling makes them from B0 (the released multipliers with --official)
SCALED = {f"{prefix}b{i}": i for i in range(1, 8) for prefix in ("", "efficientnet_")}


def spaces_dir() -> Path:
    """$NAS_SPACES; else the copy shipped in the installed package (`pip install .`, see setup.py); else the
    checkout's search_spaces/ (an editable install, or PYTHONPATH=checkout)."""
    env = os.environ.get("NAS_SPACES")
    if env:
        return Path(env)
    shipped = Path(__file__).resolve().parent / "search_spaces"
    return shipped if shipped.is_dir() else Path(__file__).resolve().parent.parent / "search_spaces"


def zoo_dir() -> Path:
    return spaces_dir() / "zoo"


def names() -> list[str]:
    found = {p.stem for p in zoo_dir().glob("*.yaml")} | {p.stem for p in spaces_dir().glob("*.yaml")}
    return sorted(found)


def path_of(name: str) -> Path:
    key = ALIASES.get(name.lower(), name.lower())
    for folder in (zoo_dir(), spaces_dir()):
        candidate = folder / f"{key}.yaml"
        if candidate.is_file():
            return candidate
    if key in SCALED:
        phi = SCALED[key]
        raise SpecError(f"no file or zoo entry named '{name}'", name,
                        f"EfficientNet-B{phi} is B0 compound-scaled: nas scale --base b0 --official --phi {phi} "
                        f"-o efficientnet_b{phi}.yaml")
    raise SpecError(f"no file or zoo entry named '{name}'", name, did_you_mean(key, names()) or "see `nas zoo`")


def resolve_source(source: str | os.PathLike) -> Path:
    """A path that exists, else a zoo name (or alias); errors name the closest zoo entries."""
    path = Path(source)
    if path.exists() or path.suffix in (".yaml", ".yml") or os.sep in str(source):
        return path
    return path_of(str(source))


def load(name: str):
    from nas.dsl import load as load_file

    return load_file(resolve_source(name))


def architectures() -> list[str]:
    """Names of the fixed architectures: every file in zoo/, plus top-level files that hold no choices."""
    from nas.dsl import load as load_file

    found = []
    for name in names():
        arch = load_file(path_of(name))
        if not arch.choices():
            found.append(name)
    return found


@dataclass
class ZooRow:
    name: str
    size: int
    params: int
    flops: float
    ref_params: float | None
    ref_flops: float | None
    source: str

    @property
    def params_ratio(self) -> float | None:
        return self.params / self.ref_params if self.ref_params else None

    @property
    def flops_ratio(self) -> float | None:
        return self.flops / self.ref_flops if self.ref_flops else None


def count(name: str) -> ZooRow:
    """Params and FLOPs of a zoo entry at its native resolution, beside its published figures."""
    from nas.cost import count_arch

    arch = load(name)
    cost = count_arch(arch).total
    ref = arch.doc.get("reference") or {}
    return ZooRow(name, arch.doc["input"]["size"], cost.params, cost.flops, _number(ref.get("params")),
                  _number(ref.get("flops")), str(ref.get("source", "")))


def _number(value) -> float | None:
    """A published figure; YAML 1.1 reads 5.3e6 (no exponent sign) as text, so text is parsed too."""
    try:
        return float(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None
