"""`nas search`: a strategy proposes, the cost table screens, Ray Tune trains, the results folder remembers.

    summary = run_search(recipe, run)          # run: nas.runs.RunDir (kind "search")

- Ray: a local instance with the recipe's CPUs (`resources.cpus`), or the cluster at `ray.address` /
  `--address`; an already running Ray (a test session) is reused and left running.
- Trials are Ray Tune function trainables (nas.search.trial) sharing the dataset through the object store,
  on reused actors, at most `resources.concurrency` at a time, each with its CPUs/GPUs; ASHA when the
  recipe has `early_stop: {asha: ...}`; `budget.time` becomes Tune's time budget.
- The strategy is adapted to Tune by `StrategySearcher` (a `ray.tune.search.Searcher`); strategies
  themselves import no Ray. Before a proposal becomes a trial its cost comes from the per-choice cost table
  (`nas.cost.lut.CostTable`): one that breaks a constraint never trains, is recorded `rejected` with its
  cost, and the strategy is told (with its violations).
- Every ask and tell is appended to events.jsonl (fsynced) before anything else happens; `--resume`
  replays that log into a fresh strategy with the same seed — which rebuilds its state exactly, Optuna's
  seeded samplers included — keeps every finished trial, re-queues the ones that were in flight, and
  counts the budget from what is done. That is why we drive Optuna through our own Searcher rather than
  Ray's OptunaSearch: its state lives in the Tune experiment, and a SIGKILL between Tune's checkpoints
  loses or repeats trials.
- A recipe `storage` (PostgreSQL, or any SQLAlchemy URL) holds a study shared by every process pointed at it
  with the same `study_name` (default: the recipe's name), as on several machines: the budget counts the
  study's trained trials, not this process's; a proposal may train only while fewer than `budget.trials`
  trials numbered below it are trained or running (else it is cancelled, and this process waits, polling the
  study, until a slot frees or the study is done). The event log still holds this process's own trials; a
  resume keeps them and fails its own trials that were running (see nas.search.strategies.optuna).
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nas.dsl.errors import SpecError
from nas.recipe import Recipe, strategy_info
from nas.search.results import EVENTS, Record, json_line, read_events
from nas.search.strategies import Exhausted, Outcome, make_strategy
from nas.search.trial import injection_from_env

MAX_REJECTS_IN_A_ROW = 2000
WAIT = "wait"  # propose(): nothing to start now, ask again later (a shared study's budget is held by others)
POLL_S = 1.0  # how often a waiting process counts a shared study again


@dataclass
class Prepared:
    """What a search needs before its run folder exists: any user error surfaces here, nothing written yet."""

    data: Any
    space: Any
    table: Any


def prepare(recipe: Recipe) -> Prepared:
    """Load the data and the space, build the cost table, refuse impossible constraints and strategies that
    cannot run on this space (a grid over a huge one) — all before a run folder is made."""
    from nas.cost.lut import CostTable
    from nas.data import load_dataset

    d = recipe.data
    data = load_dataset(d.name, size=d.size, root=d.root, seed=d.seed, channels=d.channels,
                        val_fraction=d.val_fraction)
    space = recipe.load_space(data)
    metrics = {o.metric for o in recipe.objectives} | {c.metric for c in recipe.constraints}
    latency_device = "cpu" if "latency" in metrics else None
    if hasattr(space, "cost_table"):  # a space that is not a plain DSL space brings its own per-choice table
        table = space.cost_table(latency_device=latency_device)
    else:
        table = CostTable(space, latency_device=latency_device, seed=recipe.seed)
    check_feasible(recipe, space, table)
    if recipe.storage:
        from nas.search.strategies.optuna import OptunaStrategy, check_storage

        if issubclass(strategy_info(recipe.strategy.name), OptunaStrategy):
            check_storage(recipe.storage, recipe.where("storage"), recipe.study_name or recipe.name,
                          recipe.objectives, recipe.where("strategy"))
    make_strategy(recipe.strategy.name, space, recipe.objectives, recipe.strategy.options, recipe.seed,
                  constraints=recipe.constraints, costs=lambda a: {}, where=recipe.where("strategy")).close()
    return Prepared(data, space, table)


class Search:
    """The driver's state: strategy, cost table, records, the event log, and the budget. No Ray here."""

    def __init__(self, recipe: Recipe, run, prepared: Prepared, *, resume: bool = False,
                 log: Callable[[str], None] = print, inject: dict | None = None, show: Callable | None = None):
        self.recipe, self.run, self.log = recipe, run, log
        self.data, self.space, self.table = prepared.data, prepared.space, prepared.table
        self.show = show or (lambda renderable: None)  # prints rich tables (the CLI's console)
        self.inject = inject
        self.resumed = resume
        storage = recipe.storage or f"sqlite:///{Path(run.path).resolve() / 'study.db'}"
        private = f"{recipe.name}-{Path(run.path).name}"  # the run folder's own study
        self.study_name = recipe.study_name or (recipe.name if recipe.storage else private)
        self.strategy = make_strategy(
            recipe.strategy.name, self.space, recipe.objectives, recipe.strategy.options, recipe.seed,
            constraints=recipe.constraints, storage=storage, study_name=self.study_name, fresh=True,
            shared=recipe.storage is not None, costs=self.costs, where=recipe.where("strategy"))
        self.shared = bool(getattr(self.strategy, "shared", False))
        self._next_count = 0.0  # when a waiting process may count the shared study again
        self.records: dict[int, Record] = {}
        self.pending: deque[tuple[int, dict]] = deque()  # asked, not told: in flight when the run was killed
        self.in_flight: set[int] = set()
        self.rejects_in_a_row = 0  # rejected or duplicate proposals since the last one that trained
        self.trained_archs: dict[str, int] = {}  # an architecture that trained → its trial number
        self.exhausted = False
        self.previous_seconds = 0.0
        self.began = time.perf_counter()
        if resume:
            self.replay(read_events(run.path / EVENTS))

    # -- budget ------------------------------------------------------------------------------------------
    @property
    def trained(self) -> int:
        return sum(r.status not in ("rejected", "duplicate") for r in self.records.values())

    @property
    def remaining(self) -> int:
        return max(0, self.recipe.budget.trials - self.done())

    def done(self) -> int:
        """Trials that used the budget: this process's, or the whole shared study's."""
        return self.strategy.claims()[0] if self.shared else self.trained

    def study_summary(self) -> dict | None:
        if not self.shared:
            return None
        return {"name": self.study_name, "trained": self.done(), "this_process": self.trained}

    def seconds(self) -> float:
        return self.previous_seconds + time.perf_counter() - self.began

    # -- costs -------------------------------------------------------------------------------------------
    def costs(self, assignment: dict) -> dict[str, float]:
        cost = self.table.estimate(assignment)
        return {"flops": float(cost.flops), "params": float(cost.params),
                "latency": float(cost.latency_ms) if cost.latency_ms is not None else None}

    def violations(self, costs: dict) -> list[float]:
        return [c.violation(costs[c.metric]) for c in self.recipe.constraints]

    # -- the event log -----------------------------------------------------------------------------------
    def _event(self, event: dict) -> None:
        self.run.append_line(EVENTS, json_line(event))

    def replay(self, events: list[dict]) -> None:
        """Rebuild the strategy's state from the log of an interrupted run (same calls, same order)."""
        if self.shared:
            return self._replay_shared(events)
        asked: dict[int, dict] = {}
        for event in events:
            if event["event"] == "ask":
                number, assignment = self.strategy.ask()
                if number != event["number"] or assignment != event["assignment"]:
                    raise SpecError(f"resuming diverged at trial {number}: the strategy now proposes something else",
                                    str(self.run.path / EVENTS), "was the recipe or the space file changed?")
                asked[number] = assignment
            elif event["event"] == "tell":
                record = Record(**event["record"])
                self._remember(record)
                self.strategy.tell(record.number, self._outcome(record))
                asked.pop(record.number, None)
                self.previous_seconds = max(self.previous_seconds, event.get("seconds", 0.0))
        self.pending.extend(sorted(asked.items()))

    def _replay_shared(self, events: list[dict]) -> None:
        """A shared study holds the sampler's state already: keep this process's records, fail its trials
        that were running when it was killed (they are not trained again: the study proposes anew)."""
        asked: set[int] = set()
        for event in events:
            if event["event"] == "ask":
                asked.add(event["number"])
            elif event["event"] in ("tell", "cancel"):
                asked.discard(event["number"])
                if event["event"] == "tell":
                    self._remember(Record(**event["record"]))
                    self.previous_seconds = max(self.previous_seconds, event.get("seconds", 0.0))
        self.strategy.abandon(asked)

    # -- proposing and finishing (called by the Searcher) -------------------------------------------------
    def propose(self) -> tuple[int, dict, dict] | str | None:
        """The next candidate that meets the constraints, None when the search is done, or WAIT."""
        if self.exhausted:
            return None
        if self.shared:
            gate = self._shared_gate()
            if gate is not None:
                return gate if gate == WAIT else None
        elif self.remaining - len(self.in_flight) <= 0:
            return None
        while True:
            if self.pending:
                number, assignment = self.pending.popleft()
            else:
                try:
                    number, assignment = self.strategy.ask()
                except Exhausted:
                    self.exhausted = True
                    return None
                self._event({"event": "ask", "number": number, "assignment": assignment})
            same = self.trained_archs.get(arch_key(assignment))
            if same is not None:  # never train an architecture twice: the strategy gets the known result
                self.rejects_in_a_row += 1
                was = self.records[same]
                self.finish(Record(number, "duplicate", assignment, val_acc=was.val_acc, flops=was.flops,
                                   params=was.params, latency=was.latency, error=f"same architecture as trial {same}",
                                   violations=list(was.violations), duplicate_of=same))
                if self._stuck():
                    return None
                continue
            costs = self.costs(assignment)
            violations = self.violations(costs)
            if any(v > 0 for v in violations):
                self.rejects_in_a_row += 1
                broken = [f"{c.metric} {c.text}" for c, v in zip(self.recipe.constraints, violations) if v > 0]
                self.finish(Record(number, "rejected", assignment, flops=costs["flops"], params=costs["params"],
                                   latency=costs["latency"], error="breaks " + ", ".join(broken),
                                   violations=violations))
                if self._stuck():
                    return None
                continue
            self.rejects_in_a_row = 0
            if self.shared and self.strategy.claims(below=number)[1] >= self.recipe.budget.trials:
                self.strategy.cancel(number)  # another process took the last slot between our count and ask
                self._event({"event": "cancel", "number": number})
                self._next_count = time.monotonic() + POLL_S
                return WAIT
            self.in_flight.add(number)
            return number, assignment, costs

    def _shared_gate(self) -> str | None:
        """None to go on; WAIT while the budget is held by running trials; "done" when the study is."""
        now = time.monotonic()
        if now < self._next_count:
            return WAIT
        done, claimed = self.strategy.claims()
        if done >= self.recipe.budget.trials:
            return "done"
        if claimed >= self.recipe.budget.trials:
            self._next_count = now + POLL_S
            return WAIT
        return None

    def _stuck(self) -> bool:
        if self.rejects_in_a_row < MAX_REJECTS_IN_A_ROW:
            return False
        self.log(f"stopping: {MAX_REJECTS_IN_A_ROW} proposals in a row broke the constraints or repeated a "
                 "trained architecture")
        self.exhausted = True
        return True

    def _remember(self, record: Record) -> None:
        self.records[record.number] = record
        if record.status in ("ok", "stopped"):
            self.trained_archs.setdefault(arch_key(record.assignment), record.number)

    def complete(self, number: int, assignment: dict, costs: dict, last: dict, final: dict | None,
                 errored: bool) -> Record:
        """Turn a finished Tune trial (its last val_acc report and its final report) into a record."""
        self.in_flight.discard(number)
        final = final or {}
        status, error = "ok", final.get("error", "")
        epochs = int(last.get("epoch", 0))
        if errored:
            status, error = "failed", error or "the trial's process raised (see Ray's error.txt)"
        elif final.get("status") in ("failed", "nan"):
            status = "failed"
        elif epochs < self.recipe.train["epochs"]:
            status = "stopped"
        val_acc = last.get("val_acc") if status != "failed" else None
        node = final if final.get("node_id") else last  # the node of the last attempt that reported
        record = Record(number, status, assignment, val_acc=val_acc, flops=costs["flops"], params=costs["params"],
                        latency=costs["latency"], epochs=epochs, seconds=float(final.get("seconds") or
                                                                                 last.get("time_total_s", 0.0)),
                        error=error, violations=self.violations(costs), node_ip=str(node.get("node_ip") or ""),
                        node_id=str(node.get("node_id") or ""))
        self.finish(record)
        return record

    def finish(self, record: Record) -> None:
        outcome = self._outcome(record)
        record.values = outcome.values
        self._remember(record)
        self._event({"event": "tell", "number": record.number, "record": record.as_dict(),
                     "seconds": self.seconds()})
        self.strategy.tell(record.number, outcome)
        self.log_record(record)

    def log_record(self, record: Record) -> None:
        from nas.search.results import progress_line

        self.log(progress_line(record, self.done(), self.recipe.budget.trials))

    def _outcome(self, record: Record) -> Outcome:
        if record.status == "duplicate":  # told what its first training gave
            first = self._outcome(self.records[record.duplicate_of])
            return Outcome(first.status, first.values, first.violations, trained=False)
        if record.status == "failed" or (record.status != "rejected" and record.val_acc is None):
            return Outcome("failed")
        values = []
        for objective in self.recipe.objectives:
            if objective.metric == "accuracy":
                values.append(record.val_acc if record.status != "rejected" else 0.0)
            else:
                values.append(record.metric(objective.metric))
        return Outcome(record.status, values, list(record.violations))


def arch_key(assignment: dict) -> str:
    return json.dumps(assignment, sort_keys=True)


def check_feasible(recipe: Recipe, space, table) -> None:
    """An impossible constraint is a located error before anything trains: the table's per-term minimum
    (maximum for ≥) bounds what any architecture of the space can cost."""
    for constraint in recipe.constraints:
        attr = {"flops": "flops", "params": "params", "latency": "latency_ms"}[constraint.metric]
        pick = min if constraint.op in ("<=", "<") else max
        bound = float(getattr(table.fixed, attr) or 0.0) + sum(
            pick(float(getattr(cost, attr) or 0.0) for cost in term.table.values()) for term in table.terms
            if term.table)
        if not constraint.ok(bound):
            from nas.report import human

            extreme = "smallest" if pick is min else "largest"
            raise SpecError(f"constraint {constraint.metric} {constraint.text} cannot hold: the {extreme} "
                            f"architecture of space '{space.name}' has {human(bound)}", constraint.where,
                            "loosen the constraint or shrink the space (space.width, space.depth)")


def run_search(recipe: Recipe, run, *, resume: bool = False, quiet: bool = False, address: str | None = None,
               inject: dict | None = None, log: Callable[[str], None] | None = None,
               prepared: Prepared | None = None) -> dict:
    """Run (or resume) the search of `recipe` into the open run folder `run`; returns the summary."""
    from nas.search import results as res
    from nas.search.tuner import run_trials

    inject = inject if inject is not None else injection_from_env()
    show = None
    if quiet:
        log = lambda line: None  # noqa: E731
    else:
        from nas.report import console

        out = console()
        show = out.print
        log = log or (lambda line: out.print(line, markup=False, highlight=False))
    search = Search(recipe, run, prepared or prepare(recipe), resume=resume, log=log, inject=inject, show=show)
    if not resume:
        run.write_text("recipe.yaml", recipe.to_yaml())
    try:
        time_left = recipe.budget.time_s is None or search.previous_seconds < recipe.budget.time_s
        if search.remaining > 0 and not search.exhausted and time_left:
            run_trials(search, address=address or recipe.ray_address, quiet=quiet)
    finally:
        search.strategy.close()
    return res.write_results(search)
