"""The Ray Tune side of a search: the Searcher adapter around our strategies, ASHA, resources, Ray itself.

Only this module (and nas.search.trial, nas.search.family) imports Ray. `StrategySearcher.suggest` asks the driver's `Search`
for the next candidate that meets the constraints (rejected ones are recorded there and never become Tune
trials); `on_trial_complete` hands Tune's last results back to it.
"""
from __future__ import annotations

import os
from pathlib import Path

from ray.tune.search import Searcher

METRIC = "val_acc"


class StrategySearcher(Searcher):
    """A Ray Tune Searcher whose proposals come from a `nas.search.runner.Search`."""

    def __init__(self, search):
        super().__init__(metric=METRIC, mode="max")
        self.search = search
        self.trials: dict[str, tuple] = {}
        self.last: dict[str, dict] = {}  # the last epoch report (with val_acc) of each running trial
        self.final: dict[str, dict] = {}  # the closing report (status done / failed / nan)

    def __getstate__(self) -> dict:
        # Tune pickles the searcher into its experiment state; ours lives in events.jsonl instead (the driver's
        # Search holds a locked run folder and a database connection, which do not pickle).
        return {k: v for k, v in self.__dict__.items() if k != "search"} | {"search": None}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # metric and mode are ours; the space is the strategy's

    def suggest(self, trial_id: str):
        proposal = self.search.propose()
        if proposal is None:
            return Searcher.FINISHED
        self.trials[trial_id] = proposal
        number, assignment, _ = proposal
        return {"number": number, "assignment": assignment}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if METRIC in result:
            self.last[trial_id] = result
        if result.get("status") in ("done", "failed", "nan"):
            self.final[trial_id] = result

    def flush(self) -> None:
        """Trials that Tune ended without telling us (its time budget ran out): recorded as stopped."""
        for trial_id in list(self.trials):
            self.final.pop(trial_id, None)
            self.on_trial_complete(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.trials:
            return
        if result:
            self.on_trial_result(trial_id, result)
        number, assignment, costs = self.trials.pop(trial_id)
        last = dict(self.last.pop(trial_id, {}))
        if result and "time_total_s" in result:
            last.setdefault("time_total_s", result["time_total_s"])
        self.search.complete(number, assignment, costs, last, self.final.pop(trial_id, None), error)


def start_ray(address: str | None, cpus: int, gpus: float) -> bool:
    """Join `address`, or start a local Ray with `cpus`; an already initialized Ray is reused. Returns whether
    this call started it (and so should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=cpus, num_gpus=int(gpus) if gpus else None, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as err:
        from nas.dsl.errors import SpecError

        raise SpecError(f"cannot start or join Ray: {str(err).splitlines()[0]}", address or "ray.init",
                        "check ray.address / --address (e.g. auto, or ray://head:10001)") from None
    return True


def experiment_name(root: Path) -> str:
    """Ray's experiment folder in the run folder: `ray`, then `ray-resume-N` for each resumed run."""
    return "ray" if not (root / "ray").exists() else f"ray-resume-{len(list(root.glob('ray-resume-*'))) + 1}"


def run_trials(search, *, address: str | None = None, quiet: bool = False) -> None:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from nas.search.trial import trainable

    recipe = search.recipe
    # Our closing reports (failed / nan) carry no val_acc on purpose: ASHA must not rank them.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    res = recipe.resources
    gpus = res.gpus_per_trial * res.concurrency
    started = start_ray(address, res.cpus, gpus)
    try:
        settings = {"space": search.space, "train": dict(recipe.train), "seed": recipe.seed,
                    "threads": max(1, int(res.cpus_per_trial)), "inject": search.inject}
        fn = tune.with_parameters(trainable, data=search.data, settings=settings)
        fn = tune.with_resources(fn, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
        scheduler = None
        if recipe.early_stop:
            asha = recipe.early_stop["asha"]
            scheduler = ASHAScheduler(time_attr="training_iteration", max_t=recipe.train["epochs"],
                                      grace_period=asha["grace"], reduction_factor=asha["reduction"])
        time_left = None
        if recipe.budget.time_s:
            time_left = max(1.0, recipe.budget.time_s - search.previous_seconds)
        root = Path(search.run.path).resolve()
        name = experiment_name(root)
        searcher = StrategySearcher(search)
        tuner = tune.Tuner(
            fn,
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher,
                                        scheduler=scheduler, num_samples=search.remaining,
                                        max_concurrent_trials=res.concurrency, reuse_actors=True,
                                        time_budget_s=time_left),
            run_config=tune.RunConfig(name=name, storage_path=str(root), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0)))
        tuner.fit()
        searcher.flush()
    finally:
        if started:
            ray.shutdown()
