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
"""
from __future__ import annotations

import warnings

import optuna

from nas.recipe import Option
from nas.search.strategies.base import Outcome, Strategy

optuna.logging.set_verbosity(optuna.logging.WARNING)


class OptunaStrategy(Strategy):
    max_objectives: int | None = 1

    def __init__(self, *args, storage: str | None = None, study_name: str = "nas", fresh: bool = True,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.storage = optuna.storages.RDBStorage(storage) if storage else optuna.storages.InMemoryStorage()
        if fresh and study_name in {s.study_name for s in optuna.get_all_study_summaries(self.storage)}:
            optuna.delete_study(study_name=study_name, storage=self.storage)
        self.study = optuna.create_study(
            study_name=study_name, storage=self.storage, sampler=self.sampler(),
            directions=["maximize" if o.direction == "max" else "minimize" for o in self.objectives])
        self.trials: dict[int, optuna.Trial] = {}

    def sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def _propose(self, number: int) -> dict[str, str]:
        trial = self.study.ask()
        self.trials[number] = trial
        return self.space.walk(lambda name, choice: trial.suggest_categorical(name, list(choice.keys)))

    def tell(self, number: int, outcome: Outcome) -> None:
        trial = self.trials.pop(number)
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
