"""TPE and NSGA-II through Optuna's own samplers, driven with Optuna's ask/tell interface.

Each proposal is `study.ask()` followed by a define-by-run walk of the space: `trial.suggest_categorical`
only for the choices a walk reaches, so a depth pick that removes layers also removes their parameters and
TPE never models a dead one. Hardware constraints are Optuna's own: every told trial carries one
`trial.set_constraint` value per recipe constraint (≤ 0 feasible), which Optuna 5's samplers read (its
`constraints_func` is deprecated), so a rejected candidate (never trained) is an infeasible trial — its
accuracy objective is told as 0 and its cost objectives as counted. Failed trials are told as FAIL; trials
that ASHA stopped are PRUNED (single objective, with their last value reported) or COMPLETE with their last
values (several).

The study lives in Optuna storage: SQLite `study.db` in the run folder unless the recipe names another
SQLAlchemy URL, so optuna-dashboard can open it. The runner resumes a search by replaying its log of
ask/tell calls into a fresh study of the same name (`fresh=True` deletes the interrupted one first): the
samplers are seeded, so the replay rebuilds their exact state, which reloading the stored trials into a
new sampler would not.

A storage the recipe names (`storage: postgresql://…`) holds a *shared* study (`shared=True`): every process
pointed at it with the same `study_name` loads it instead of replacing it, proposes from all of its trials
(trial numbers are the study's, unique across processes), and counts the budget in it (`claims`). Each told
trial carries the user attribute `nas_trained` (False for rejected, repeated or cancelled ones), so only
trained trials use the budget. A process records Optuna heartbeats for its running trials; when it dies
(SIGKILL, a lost machine) they turn FAIL after the grace period (`fail_stale_trials`, run by whoever counts
next) and no longer hold budget, so the survivors train in their place. Each process seeds its sampler with
the recipe's seed mixed with its host and pid: the same seed everywhere would propose the same startup trials.
"""
from __future__ import annotations

import hashlib
import os
import random
import socket
import threading
import time
import warnings

import optuna

from nas.recipe import Option
from nas.search.strategies.base import Outcome, Strategy

optuna.logging.set_verbosity(optuna.logging.WARNING)
# ask/tell with heartbeats is what a shared study needs; Optuna expects them only under Study.optimize
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
# Heartbeat of a shared study's running trials (seconds); a trial silent for GRACE_BEATS of them is failed.
HEARTBEAT_ENV = "NAS_STUDY_HEARTBEAT_S"
GRACE_BEATS = 5
CONNECT_TIMEOUT_S = 5


def open_storage(url: str, heartbeat_s: int | None = None) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with a short connect timeout for server databases (an unreachable one fails fast)."""
    engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}} if url.startswith(("postgresql",
                                                                                                 "mysql")) else {}
    beat = {"heartbeat_interval": heartbeat_s, "grace_period": GRACE_BEATS * heartbeat_s} if heartbeat_s else {}
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            with warnings.catch_warnings():  # heartbeats are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beat)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # two processes creating Optuna's tables in a fresh database at once: PostgreSQL refuses the
            # second CREATE ("duplicate key … pg_type_typname_nsp_index"); once the tables exist, opening works
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)


def check_storage(url: str, where, study_name: str | None = None, objectives=(), strategy_where=None) -> None:
    """Open the storage once (creating Optuna's tables) so that a bad URL, a missing driver, an unreachable
    database or a study of that name with other objectives is a located one-line error before a run folder
    exists (and before Ray starts)."""
    import sqlalchemy.exc

    from nas.dsl.errors import SpecError

    try:
        storage = open_storage(url)
    except ImportError:  # Optuna's message when SQLAlchemy's driver for the URL is missing
        raise SpecError(f"storage {redact(url)}: no database driver for this URL is installed", where,
                        "pip install 'nas[postgres]' for postgresql:// (psycopg 3)") from None
    except (ValueError, sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        cause = getattr(err, "orig", None) or err.__cause__ or err
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise SpecError(f"cannot open the study storage {redact(url)}: {reason}", where,
                        "is the database server running and reachable, and the URL right?") from None
    try:
        if study_name is not None:
            summary = next((s for s in optuna.get_all_study_summaries(storage) if s.study_name == study_name), None)
            if summary is not None:
                check_directions(summary.directions, study_name, objectives, strategy_where or where)
    finally:
        storage.engine.dispose()


def check_directions(directions, study_name: str, objectives, where) -> None:
    """Optuna loads an existing study whatever its directions: mixing [accuracy] and [accuracy, flops] in one
    study would rank one search's trials by the other's objectives."""
    from nas.dsl.errors import SpecError

    wanted = [optuna.study.StudyDirection.MAXIMIZE if o.direction == "max" else optuna.study.StudyDirection.MINIMIZE
              for o in objectives]
    if list(directions) != wanted:
        have = ", ".join(d.name.lower() for d in directions)
        raise SpecError(f"study '{study_name}' in this storage optimizes [{have}], not this recipe's objectives "
                        f"[{', '.join(o.metric for o in objectives)}]", where,
                        "give the recipe its own study_name, or the same objectives as the study")


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    import re

    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def heartbeat_seconds() -> int:
    return max(1, int(os.environ.get(HEARTBEAT_ENV, "10")))


class OptunaStrategy(Strategy):
    max_objectives: int | None = 1

    def __init__(self, *args, storage: str | None = None, study_name: str = "nas", fresh: bool = True,
                 shared: bool = False, where=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.shared = bool(shared and storage)
        self.storage = (open_storage(storage, heartbeat_seconds() if self.shared else None) if storage
                        else optuna.storages.InMemoryStorage())
        if self.shared:  # several processes share this study: never replace it, never sample in lockstep
            digest = hashlib.sha256(f"{self.seed}-{socket.gethostname()}-{os.getpid()}".encode()).hexdigest()
            self.seed = int(digest[:8], 16)
        elif fresh and study_name in {s.study_name for s in optuna.get_all_study_summaries(self.storage)}:
            optuna.delete_study(study_name=study_name, storage=self.storage)
        self.study = optuna.create_study(
            study_name=study_name, storage=self.storage, sampler=self.sampler(), load_if_exists=self.shared,
            directions=["maximize" if o.direction == "max" else "minimize" for o in self.objectives])
        try:  # checked before the run folder too (check_storage); another process may have made it since
            check_directions(self.study.directions, study_name, self.objectives, where)
        except Exception:
            if isinstance(self.storage, optuna.storages.RDBStorage):
                self.storage.engine.dispose()
            raise
        self.trials: dict[int, optuna.Trial] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def ask(self) -> tuple[int, dict[str, str]]:
        """Numbered by the study (0, 1, … in a fresh one; unique across the processes of a shared one)."""
        trial = self.study.ask()
        self.trials[trial.number] = trial
        self.asked += 1
        if self.shared:
            self.storage.record_heartbeat(trial._trial_id)  # Optuna keeps the storage's trial id private
            if self._beat is None:
                self._beat = threading.Thread(target=self._heartbeat, name="nas-study-heartbeat", daemon=True)
                self._beat.start()
        return trial.number, self.space.walk(lambda name, choice: trial.suggest_categorical(name, list(choice.keys)))

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.storage.get_heartbeat_interval()):
            for trial in list(self.trials.values()):
                try:
                    self.storage.record_heartbeat(trial._trial_id)
                except Exception:  # noqa: BLE001 - a missed beat is retried; the grace period covers a few
                    pass

    # -- the shared study's budget --------------------------------------------------------------------------
    def claims(self, below: int | None = None) -> tuple[int, int]:
        """(trained and finished, trained or running) trials of the study, optionally only those numbered
        below `below`. Stale running trials of dead processes are failed first, so they claim nothing."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        done = claimed = 0
        for t in self.study.get_trials(deepcopy=False):
            if below is not None and t.number >= below:
                continue
            if t.state == optuna.trial.TrialState.RUNNING:
                claimed += 1
            elif t.user_attrs.get("nas_trained"):
                done += 1
                claimed += 1
        return done, claimed

    def cancel(self, number: int) -> None:
        """Give back a trial that lost the race for the last budget slot: FAIL, not trained, never run."""
        trial = self.trials.pop(number)
        trial.set_user_attr("nas_trained", False)
        self.study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def abandon(self, numbers) -> None:
        """A resumed process's trials that were running when it was killed: FAIL unless already failed stale."""
        wanted = set(numbers)
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if t.number in wanted:
                try:
                    self.storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass

    def sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def tell(self, number: int, outcome: Outcome) -> None:
        trial = self.trials.pop(number)
        trial.set_user_attr("nas_trained", bool(outcome.trained and outcome.status != "rejected"))
        if outcome.status == "failed" or outcome.values is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        for i, violation in enumerate(outcome.violations):
            trial.set_constraint(str(i), float(violation))
        if outcome.status == "stopped" and len(self.objectives) == 1:
            trial.report(outcome.values[0], step=0)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            return
        self.study.tell(trial, list(outcome.values))

    def close(self) -> None:
        self._stop.set()
        if isinstance(self.storage, optuna.storages.RDBStorage):
            self.storage.engine.dispose()


class TPE(OptunaStrategy):
    """Optuna's TPE. Multivariate by default (with `group` when a depth pick makes choices conditional):
    on bench/trials.py's table the independent TPE got stuck re-proposing a local optimum in 2 of 10 seeds."""

    OPTIONS = {
        "startup": Option(10, int, "random trials before TPE models the results (n_startup_trials)",
                          lambda v: v >= 1),
        "candidates": Option(24, int, "candidates scored per proposal (n_ei_candidates)", lambda v: v >= 1),
        "multivariate": Option(True, bool, "model the choices jointly (false: Optuna's independent TPE)"),
    }

    def sampler(self):
        from nas.dsl.walk import gates

        multivariate = self.options["multivariate"]
        with warnings.catch_warnings():  # multivariate and group are marked experimental by Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=self.seed, n_startup_trials=self.options["startup"], n_ei_candidates=self.options["candidates"],
                multivariate=multivariate, group=multivariate and bool(gates(self.space)))


class NSGA2(OptunaStrategy):
    OPTIONS = {
        "population": Option(16, int, "NSGA-II population size, ≥ 2", lambda v: v >= 2),
        "crossover_prob": Option(0.9, float, "in [0, 1]", lambda v: 0 <= v <= 1),
        "mutation_prob": Option(None, float, "per-parameter mutation probability in [0, 1] (default 1/params)",
                                lambda v: 0 <= v <= 1),
    }
    max_objectives = None

    def sampler(self):
        return optuna.samplers.NSGAIISampler(
            seed=self.seed, population_size=self.options["population"],
            crossover_prob=self.options["crossover_prob"], mutation_prob=self.options["mutation_prob"])
