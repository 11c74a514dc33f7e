"""What a search leaves in its run folder, and how it reads back.

    recipe.yaml          the resolved recipe (defaults filled, --set applied): `--resume` reads it back
    events.jsonl         every ask and tell, in order, one JSON line each (fsynced): the search's memory,
                         replayed on resume; a torn last line (a kill mid-write) is ignored
    trials.csv           one row per trial: number, status, every choice's pick, metrics, cost, seconds, and
                         the Ray node (IP and id) that trained it
    best.arch.yaml       the best architecture (single objective), or pareto/NNN.arch.yaml (several)
    summary.json         counts, the best trial(s), the recipe name, seconds
    export/              the best architecture in the recipe's `export: {formats: [...]}`, when it has one
    study.db             Optuna's study (tpe, nsga2), unless the recipe names another storage
    ray/, ray-resume-N/  Ray Tune's experiment folders (per-trial results, TensorBoard event files), unless
                         the recipe's `ray.storage_path` puts them in a place every node of a cluster reaches
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from nas.recipe import Objective

EVENTS = "events.jsonl"
STATUS_ORDER = ("ok", "stopped", "failed", "rejected", "duplicate")


@dataclass
class Record:
    """One trial as the results know it."""

    number: int
    status: str  # ok | stopped | failed | rejected (broke a constraint) | duplicate (trained before: not again)
    assignment: dict[str, str]  # active choices only
    val_acc: float | None = None
    flops: float | None = None
    params: float | None = None
    latency: float | None = None
    epochs: int = 0
    seconds: float = 0.0
    error: str = ""
    values: list[float] | None = None  # per objective (None for failed)
    violations: list[float] = field(default_factory=list)
    duplicate_of: int | None = None  # the trial that trained this architecture (status duplicate)
    node_ip: str = ""  # the Ray node that trained it (empty when it never trained)
    node_id: str = ""

    def metric(self, name: str) -> float | None:
        return self.val_acc if name == "accuracy" else getattr(self, name)

    def as_dict(self) -> dict:
        return asdict(self)


def read_events(path: Path) -> list[dict]:
    """The event log; a last line torn by a kill is dropped, any other bad line is an internal error."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    events = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # torn by a kill mid-append
            raise
    return events


def json_line(obj: Any) -> str:
    return json.dumps(_finite(obj), sort_keys=True, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def trials_csv(records: Sequence[Record], choice_names: Iterable[str]) -> str:
    names = list(choice_names)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "status", *names, "val_acc", "flops", "params", "latency_ms", "epochs", "seconds",
                     "node_ip", "node_id", "error"])
    for r in sorted(records, key=lambda r: r.number):
        writer.writerow([r.number, r.status, *(r.assignment.get(n, "") for n in names), _cell(r.val_acc),
                         _cell(r.flops), _cell(r.params), _cell(r.latency), r.epochs, f"{r.seconds:.2f}", r.node_ip,
                         r.node_id, r.error])
    return out.getvalue()


def _cell(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def ranked(records: Sequence[Record], objective: Objective) -> list[Record]:
    """Successful trials (ok, then stopped), best first by the objective; ties go to the earlier trial."""
    usable = [r for r in records if r.status in ("ok", "stopped") and r.metric(objective.metric) is not None]
    sign = -1.0 if objective.direction == "max" else 1.0
    return sorted(usable, key=lambda r: (r.status != "ok", sign * r.metric(objective.metric), r.number))


def pareto_front(records: Sequence[Record], objectives: Sequence[Objective]) -> list[Record]:
    """Non-dominated trials among the fully trained ones (status ok), in trial order."""
    pool = [r for r in records if r.status == "ok" and all(r.metric(o.metric) is not None for o in objectives)]

    def better_or_equal(a: Record, b: Record) -> bool:
        return all((a.metric(o.metric) >= b.metric(o.metric)) if o.direction == "max"
                   else (a.metric(o.metric) <= b.metric(o.metric)) for o in objectives)

    return [r for r in pool if not any(better_or_equal(o, r) and _differs(o, r, objectives) for o in pool)]


def _differs(a: Record, b: Record, objectives: Sequence[Objective]) -> bool:
    return any(a.metric(o.metric) != b.metric(o.metric) for o in objectives)


def summary(records: Sequence[Record], objectives: Sequence[Objective], recipe_name: str, seconds: float,
            best: Sequence[Record]) -> dict:
    counts = {status: sum(r.status == status for r in records) for status in STATUS_ORDER}
    return {"recipe": recipe_name, "trials": len(records), "trained": counts["ok"] + counts["stopped"] +
            counts["failed"], "counts": counts, "objectives": [{o.metric: o.direction} for o in objectives],
            "seconds": round(seconds, 2), "best": [_finite(r.as_dict()) for r in best]}


def table(records: Sequence[Record], title: str, limit: int = 5):
    """A rich table of the given records (best first): accuracy, params, FLOPs and the trial's picks."""
    from rich.table import Table

    from nas.report import human

    out = Table(title=title)
    for column in ("trial", "status", "val acc", "params", "FLOPs", "epochs", "seconds"):
        out.add_column(column, justify="right" if column not in ("status",) else "left")
    for r in list(records)[:limit]:
        out.add_row(str(r.number), r.status, f"{r.val_acc:.4f}" if r.val_acc is not None else "-",
                    human(r.params) if r.params is not None else "-", human(r.flops) if r.flops is not None else "-",
                    str(r.epochs), f"{r.seconds:.1f}")
    return out


def progress_line(r: Record, done: int, budget: int) -> str:
    from nas.report import human

    acc = f"acc {r.val_acc:.4f}" if r.val_acc is not None else "acc   -   "
    cost = f"{human(r.flops) if r.flops is not None else '-':>8} FLOPs {human(r.params) if r.params else '-':>8} params"
    tail = f"  {r.error}" if r.error else ""
    return f"[{done:>3}/{budget}] trial {r.number:>3} {r.status:<8} {acc}  {cost}  {r.seconds:6.1f}s{tail}"


def load_records(run_path: Path) -> list[Record]:
    """The finished trials of a run folder, from its event log."""
    return [Record(**e["record"]) for e in read_events(Path(run_path) / EVENTS) if e.get("event") == "tell"]


def arch_text(search, record: Record, why: str) -> str:
    from nas.dsl import dumps

    arch = search.space.resolve(record.assignment)
    return dumps(arch, header=f"{why}: trial {record.number} of `nas search` {search.recipe.name} "
                              f"(val acc {record.val_acc:.4f})")


def write_results(search) -> dict:
    """trials.csv, best.arch.yaml or pareto/*.arch.yaml, summary.json; prints the summary table."""
    run, recipe = search.run, search.recipe
    records = sorted(search.records.values(), key=lambda r: r.number)
    run.write_text("trials.csv", trials_csv(records, search.space.choices()))
    objectives = recipe.objectives
    if len(objectives) == 1:
        best = ranked(records, objectives[0])[:1]
        if best:
            run.write_text("best.arch.yaml", arch_text(search, best[0], "best"))
        shown = ranked(records, objectives[0])
    else:
        best = pareto_front(records, objectives)
        for r in best:
            run.write_text(f"pareto/{r.number:04d}.arch.yaml", arch_text(search, r, "Pareto-optimal"))
        shown = best
    if recipe.export and best:  # the recipe's `export:` section: the best (or first Pareto) architecture
        from nas.export import export

        export(search.space.resolve(best[0].assignment), Path(run.path) / "export", recipe.export["formats"])
    result = summary(records, objectives, recipe.name, search.seconds(), best)
    study = search.study_summary() if hasattr(search, "study_summary") else None
    if study:  # a shared study: what every process trained together
        result["study"] = study
        search.log(f"study {study['name']}: {study['trained']} trained by every process together")
    run.write_json("summary.json", result)
    counts = result["counts"]
    search.log(f"{result['trained']} trained ({counts['ok']} ok, {counts['stopped']} stopped, "
               f"{counts['failed']} failed), {counts['rejected']} rejected, {counts['duplicate']} duplicate, "
               f"{result['seconds']:.0f}s → {run.path}")
    if shown:
        title = "best trials" if len(objectives) == 1 else "Pareto front"
        search.show(table(shown, f"{recipe.name}: {title}"))
        top = shown[0]
        if hasattr(search.space, "explain"):  # e.g. the `nas scale` command that uses a found (α, β, γ)
            search.log(search.space.explain(top.assignment))
        if len(objectives) > 1:
            search.log(f"{len(shown)} Pareto-optimal architecture(s) in {Path(run.path) / 'pareto'}")
        elif len(top.assignment) <= 8:
            search.log("best picks: " + ", ".join(f"{k}={v}" for k, v in top.assignment.items()))
        else:
            search.log(f"best: trial {top.number} (its picks are in trials.csv), in best.arch.yaml")
    return result
