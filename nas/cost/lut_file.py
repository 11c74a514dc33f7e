"""Measured latency tables as files (`nas lut`): the per-choice decomposition of `CostTable`, timed on one
machine, written as JSON with the machine's fingerprint and the space's identity.

    {"format": "nas-lut/1",
     "space": {"name", "sha256" (of the resolved space document), "input", "document"},
     "fingerprint": {"device", "cpu", "gpu", "torch", "threads", "batch"},
     "timing": {warm-up, repeats, statistic, clock, copies, ...},
     "fixed": {"ms", "paths", "units"},                 # the op instances no choice touches
     "terms": [{"name", "choices", "paths", "entries": [{"picks": {choice: option}, "ms", "units"}]}]}

An architecture's table latency is fixed.ms + Σ_term ms of the entry for its picks. "units" is a digest of
the op instances an entry covers (path, op spec, input shape), so a fixed architecture file is matched to
its entries by what it is, not by choice names, and a table never silently prices a different network.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from nas.cost.latency import Timing, machine_fingerprint
from nas.cost.lut import CostTable
from nas.dsl.errors import SpecError
from nas.dsl.nodes import Space
from nas.dsl.plan import Unit

FORMAT = "nas-lut/1"
MACHINE_KEYS = ("device", "cpu", "gpu", "torch")  # what must match for the table to describe this machine
RERUN = "re-run nas lut on this machine, with the same --threads and --batch"


def space_identity(space: Space) -> dict:
    from nas.dsl import dumps

    document = dumps(space)
    shape = space.doc["input"]
    return {"name": space.name, "sha256": hashlib.sha256(document.encode()).hexdigest(),
            "input": [shape["channels"], shape["size"], shape["size"]], "document": document}


def units_digest(units: Iterable[Unit]) -> str:
    rows = [[u.path, u.spec, list(u.in_shape)] for u in units]
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_lut(space: Space, timing: Timing) -> dict:
    """Time every (choice, option) entry of the space's cost table, and its fixed part, on this machine."""
    from nas.cost.lut import _cell_terms

    if space.is_cell and any(term.key is not None for term in _cell_terms(space)):  # before timing anything
        raise SpecError(f"space '{space.name}' has cells that choose their inputs: their cost terms depend on "
                        "which cells stay live, which a per-choice latency table cannot list", space.file,
                        "measure block spaces (fbnet, mobilenetv3, proxyless, mnasnet) or cells with fixed inputs")
    table = CostTable(space, latency_device=timing)
    terms = []
    for term in table.terms:
        entries, paths = [], set()
        for key, cost in term.table.items():
            units = table.entry_units(term, key)
            paths.update(u.path for u in units)
            entries.append({"picks": dict(zip(term.deps, key)), "ms": cost.latency_ms, "units": units_digest(units)})
        terms.append({"name": term.name, "choices": list(term.deps), "paths": sorted(paths), "entries": entries})
    threads = timing.threads
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return {"format": FORMAT, "space": space_identity(space),
            "fingerprint": machine_fingerprint(timing.device, threads, timing.batch),
            "timing": dict(timing.as_dict(), threads=threads),
            "fixed": {"ms": table.fixed.latency_ms, "paths": sorted(u.path for u in table.fixed_units),
                      "units": units_digest(table.fixed_units)},
            "terms": terms}


def write_lut(data: dict, path: str | Path) -> None:
    from nas.dsl import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


class LatencyTable:
    """A table written by `nas lut`, read back: checks that it fits this machine and a space or architecture."""

    def __init__(self, data: dict, file: str):
        self.data, self.file = data, file

    @classmethod
    def load(cls, path: str | Path) -> "LatencyTable":
        file = str(path)
        if Path(path).exists() and not Path(path).is_file():  # a folder, a device, a pipe: never read forever
            raise SpecError("a latency table must be a regular file", file, "write one with: nas lut SPACE -o lut.json")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError("latency table not found", file, "write one with: nas lut SPACE -o lut.json") from None
        except (OSError, UnicodeDecodeError) as err:
            raise SpecError(f"cannot read the latency table: {getattr(err, 'strerror', None) or err}", file) from None
        except json.JSONDecodeError as err:
            raise SpecError(f"not a latency table (invalid JSON: {err.msg})", f"{file}:{err.lineno}:{err.colno}",
                            "write one with: nas lut SPACE -o lut.json") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not all(
                isinstance(data.get(k), (dict, list)) for k in ("space", "fingerprint", "timing", "fixed", "terms")):
            raise SpecError(f"not a latency table of format {FORMAT}", file, "write one with: nas lut SPACE -o lut.json")
        return cls(data, file)

    @property
    def fingerprint(self) -> dict:
        return self.data["fingerprint"]

    @property
    def timing(self) -> Timing:
        known = Timing.__dataclass_fields__
        return Timing(**{k: v for k, v in self.data["timing"].items() if k in known})

    def check_machine(self, device: str | None = None, threads: int | None = None, batch: int | None = None) -> None:
        """Refuse a table measured on another processor or torch, or (when given) other threads or batch."""
        fp = self.fingerprint
        try:
            here = machine_fingerprint(device or fp["device"], threads or fp["threads"], batch or fp["batch"])
        except SpecError:
            if device:  # the user's own --device is what this machine lacks
                raise
            raise SpecError(f"latency table measured with device {fp['device']!r} ({fp.get('gpu') or fp.get('cpu')}), "
                            "which this machine lacks", self.file, RERUN) from None
        for key in MACHINE_KEYS + ("threads", "batch"):
            if fp.get(key) != here[key]:
                raise SpecError(f"latency table measured with {key} {fp.get(key)!r}, this run has {here[key]!r}",
                                self.file, RERUN)

    def check_space(self, space: Space) -> None:
        mine = self.data["space"]
        if space_identity(space)["sha256"] != mine.get("sha256"):
            raise SpecError(f"latency table is for another space ('{mine.get('name')}' at "
                            f"{'×'.join(map(str, mine.get('input', [])))}; this one is '{space.name}' at "
                            f"{'×'.join(map(str, space_identity(space)['input']))}, or a different document)",
                            self.file, "measure this space with nas lut SPACE -o lut.json, at the same --input-size")

    def latency_of(self, units: list[Unit], name: str) -> float:
        """The table's milliseconds for a network made of `units`: fixed + one entry per term."""
        fixed = self.data["fixed"]
        total = self._match(units, fixed["paths"], [fixed], name, "the layers no choice touches are")["ms"]
        seen = set(fixed["paths"])
        for term in self.data["terms"]:
            total += self._match(units, term["paths"], term["entries"], name, f"{term['name']} is")["ms"]
            seen.update(term["paths"])
        stray = [u.path for u in units if u.path not in seen]
        if stray:
            self._mismatch(name, f"{stray[0]} is")
        return total

    def _match(self, units: list[Unit], paths: list[str], entries: list[dict], name: str, what: str) -> dict:
        wanted = set(paths)
        digest = units_digest([u for u in units if u.path in wanted])
        entry = next((e for e in entries if e["units"] == digest), None)
        if entry is None:
            self._mismatch(name, what)
        return entry

    def _mismatch(self, name: str, what: str):
        space = self.data["space"]
        raise SpecError(f"{name}: {what} not in the latency table (measured for space '{space.get('name')}' at "
                        f"{'×'.join(map(str, space.get('input', [])))})", self.file,
                        "measure the architecture's own space with nas lut SPACE -o lut.json, at the same --input-size")

    def cost_table(self, space: Space) -> CostTable:
        """The space's CostTable (FLOPs, params) with this table's latencies, for the DNAS expected cost."""
        self.check_space(space)
        table = CostTable(space)
        by_name = {t["name"]: t for t in self.data["terms"]}
        for term in table.terms:
            stored = by_name.get(term.name)
            if stored is None or stored["choices"] != list(term.deps):
                self._mismatch(space.name, f"{term.name} is")
            ms = {tuple(e["picks"][d] for d in term.deps): e["ms"] for e in stored["entries"]}
            for key, cost in term.table.items():
                if key not in ms:
                    self._mismatch(space.name, f"{term.name} = {', '.join(key)} is")
                term.table[key] = replace(cost, latency_ms=ms[key])
        table.fixed = replace(table.fixed, latency_ms=self.data["fixed"]["ms"])
        return table

