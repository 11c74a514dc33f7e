"""Read a run folder that `nas search` wrote, for a report: what kind of run it is, its trials or its
per-epoch history, and whether it is finished, still running, or was interrupted.

A finished multi-trial run is read from trials.csv (what the user sees and pastes), with the wall time of
each trial's end taken from events.jsonl; a run in progress has no trials.csv yet, so its finished trials
come from events.jsonl alone. Nothing here writes: a report never touches the run folder it reads.
"""
from __future__ import annotations

import csv
import fcntl
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from nas.dsl.errors import Location, SpecError
from nas.runs import LOCK, MARKER, read_json
from nas.search.results import EVENTS, STATUS_ORDER, Record, load_records, read_events

TRIAL_COLUMNS_BEFORE = ("trial", "status")
TRIAL_COLUMNS_AFTER = ("val_acc", "flops", "params", "latency_ms", "epochs", "seconds", "error")


@dataclass
class Run:
    """One run folder as a report sees it."""

    path: Path
    kind: str  # trials | coefficients | dnas
    recipe: object | None  # nas.recipe.Recipe, None when the saved recipe no longer loads
    recipe_text: str
    state: str  # finished | running | interrupted
    records: list[Record] = field(default_factory=list)  # multi-trial: every finished trial, by number
    choice_names: list[str] = field(default_factory=list)
    finished_at: dict[int, float] = field(default_factory=dict)  # trial number → search seconds at its end
    history: list[dict] = field(default_factory=list)  # dnas: one record per epoch
    summary: dict | None = None

    @property
    def name(self) -> str:
        if self.recipe is not None:
            return self.recipe.name
        return (self.summary or {}).get("recipe") or self.path.name

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def seconds(self) -> float | None:
        """Wall time of the search so far."""
        if self.summary and "seconds" in self.summary:
            return float(self.summary["seconds"])
        if self.summary and "search_seconds" in self.summary:
            return float(self.summary["search_seconds"])
        if self.finished_at:
            return max(self.finished_at.values())
        if self.history:
            return sum(float(h.get("seconds") or 0) for h in self.history)
        return None

    def objectives(self) -> list:
        from nas.recipe import Objective

        if self.kind == "dnas":
            return [Objective("accuracy", "max")]
        if self.recipe is not None:
            return list(self.recipe.objectives)
        saved = (self.summary or {}).get("objectives") or []  # [{"accuracy": "max"}, {"flops": "min"}]
        pairs = [next(iter(o.items())) for o in saved if isinstance(o, dict) and len(o) == 1]
        if pairs and all(d in ("max", "min") for _, d in pairs):
            return [Objective(m, d) for m, d in pairs]
        return [Objective("accuracy", "max")]


def load_run(path: str | os.PathLike) -> Run:
    """The run folder at `path`; a one-line SpecError for anything that is not a readable search run."""
    folder = Path(path)
    where = str(folder)
    if not folder.is_dir():
        raise SpecError("no such run folder" if not folder.exists() else "not a folder", where,
                        "give a folder that `nas search` wrote")
    marker = folder / MARKER
    if not marker.is_file():
        raise SpecError("not a run folder (no .nas-run marker)", where, "give a folder that `nas search` wrote")
    info = read_json(marker, limit=64 * 1024)
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind != "search":
        raise SpecError(f"this is a '{kind}' run folder; a report reads `nas search` runs", where)
    recipe_path = folder / "recipe.yaml"
    if not recipe_path.is_file():
        raise SpecError("an empty run: no recipe.yaml yet", where, "the search wrote nothing; run it again")
    recipe_text = recipe_path.read_text(encoding="utf-8", errors="replace")
    recipe = _recipe(recipe_path)
    state = "running" if lock_held(folder) else None
    summary = read_json(folder / "summary.json") if (folder / "summary.json").is_file() else None
    if state is None:
        state = "finished" if summary is not None else "interrupted"
    strategy = recipe.strategy.name if recipe is not None else (summary or {}).get("strategy")
    if strategy == "dnas" or (folder / "history.json").is_file():
        run = Run(folder, "dnas", recipe, recipe_text, state, summary=summary)
        run.history = _history(folder)
        if not run.history:
            raise SpecError("no finished epoch yet" if state == "running" else "an empty run: no finished epoch",
                            where, "wait for the first epoch to end" if state == "running" else
                            "the search stopped before its first epoch ended; resume it with nas search --resume")
        return run
    kind = "coefficients" if recipe is not None and recipe.space.coefficients else "trials"
    run = Run(folder, kind, recipe, recipe_text, state, summary=summary)
    events = read_events(folder / EVENTS)
    run.finished_at = {e["number"]: float(e.get("seconds") or 0.0) for e in events if e.get("event") == "tell"}
    if (folder / "trials.csv").is_file() and state != "running":
        run.records, run.choice_names = read_trials_csv(folder / "trials.csv")
    else:
        run.records = sorted(load_records(folder), key=lambda r: r.number)
        run.choice_names = list(dict.fromkeys(k for r in run.records for k in r.assignment))
    if not run.records:
        raise SpecError("no finished trial yet" if state == "running" else "an empty run: no finished trial", where,
                        "wait for the first trial to end" if state == "running" else
                        "the search stopped before any trial ended; resume it with nas search --resume")
    if not any(r.status in ("ok", "stopped") and r.val_acc is not None for r in run.records) and state != "running":
        raise SpecError(f"no trial finished training ({len(run.records)} trial(s): "
                        + ", ".join(f"{n} {s}" for s, n in counts(run.records).items() if n) + ")", where,
                        "see the error column of trials.csv")
    return run


def lock_held(folder: Path) -> bool:
    """True while another process holds the run folder's lock (a search writing it)."""
    try:
        fd = os.open(folder / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def read_trials_csv(path: Path) -> tuple[list[Record], list[str]]:
    """trials.csv back into records; any row that does not parse is a one-line error with its line. The columns
    after the choices are found by name (later versions add some, e.g. node_ip and node_id)."""
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"not UTF-8 text (byte {err.start})", where, "trials.csv is corrupted") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise SpecError("trials.csv is empty", where, "the search may have been killed while writing it")
    header = rows[0]
    first = header.index(TRIAL_COLUMNS_AFTER[0]) if TRIAL_COLUMNS_AFTER[0] in header else -1
    if (tuple(header[:len(TRIAL_COLUMNS_BEFORE)]) != TRIAL_COLUMNS_BEFORE or first < 0
            or not set(TRIAL_COLUMNS_AFTER) <= set(header[first:])):
        raise SpecError("trials.csv has an unexpected header", f"{where}:1:1",
                        f"expected {', '.join(TRIAL_COLUMNS_BEFORE)}, the choices, {', '.join(TRIAL_COLUMNS_AFTER)}")
    names = header[len(TRIAL_COLUMNS_BEFORE):first]
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise SpecError(f"a row with {len(row)} fields, the header has {len(header)}", f"{where}:{line}:1",
                            "trials.csv is corrupted")
        records.append(_record(row, names, dict(zip(header[first:], row[first:])), Location(where, line, 1)))
    return records, names


def _record(row: list[str], names: list[str], tail: dict[str, str], where: Location) -> Record:
    number, status = row[0], row[1]
    if not number.isdigit():
        raise SpecError(f"trial number '{number}' is not a number", where, "trials.csv is corrupted")
    if status not in STATUS_ORDER:
        raise SpecError(f"unknown trial status '{status}'", where, f"expected one of {', '.join(STATUS_ORDER)}")
    picks = row[len(TRIAL_COLUMNS_BEFORE):len(TRIAL_COLUMNS_BEFORE) + len(names)]
    value = {column: _number(tail[column], column, where) for column in TRIAL_COLUMNS_AFTER[:-1]}
    return Record(int(number), status, {n: v for n, v in zip(names, picks) if v != ""}, val_acc=value["val_acc"],
                  flops=value["flops"], params=value["params"], latency=value["latency_ms"],
                  epochs=int(value["epochs"] or 0), seconds=value["seconds"] or 0.0, error=tail["error"],
                  **{k: tail[k] for k in ("node_ip", "node_id") if k in tail})


def _number(text: str, column: str, where: Location) -> float | None:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{column} '{text}' is not a number", where, "trials.csv is corrupted") from None
    if not math.isfinite(value):
        raise SpecError(f"{column} '{text}' is not finite", where, "trials.csv is corrupted")
    return value


def _history(folder: Path) -> list[dict]:
    path = folder / "history.json"
    if not path.is_file():
        return []
    history = read_json(path)
    if not isinstance(history, list) or not all(isinstance(h, dict) and "epoch" in h for h in history):
        raise SpecError("history.json is not a list of epoch records", str(path), "the file is corrupted")
    return history


def _recipe(path: Path):
    from nas.recipe import load_recipe

    try:
        return load_recipe(path)
    except SpecError:
        return None  # e.g. its space file moved: the report still reads the results, without the recipe's facts


def counts(records: list[Record]) -> dict[str, int]:
    return {status: sum(r.status == status for r in records) for status in STATUS_ORDER}
