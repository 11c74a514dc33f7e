"""The Ray Tune side of a search: the Searcher adapter around our strategies, ASHA, resources, Ray itself.

Only this module (and nas.search.trial, nas.search.family) imports Ray. `StrategySearcher.suggest` asks the driver's `Search`
for the next candidate that meets the constraints (rejected ones are recorded there and never become Tune
trials); `on_trial_complete` hands Tune's last results back to it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
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
        from nas.search.runner import WAIT

        proposal = self.search.propose()
        if proposal is None:
            return Searcher.FINISHED
        if proposal == WAIT:
            return None  # Tune asks again on its next step
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


CONNECT_TIMEOUT_S = 5.0  # an unreachable head fails fast instead of Ray's own retries
ADDRESS_HINT = "HOST:PORT of the head (ray start --head prints it), auto, or ray://HOST:10001"


def check_reachable(address: str, where: str) -> None:
    """A malformed or unreachable cluster address is a located user error within seconds, before Ray retries."""
    import re
    import socket

    from nas.dsl.errors import SpecError

    if address in ("auto", "local"):
        return
    match = re.fullmatch(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})", address.strip())
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise SpecError(f"malformed Ray address {address!r}", where, ADDRESS_HINT)
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__.replace("Error", " error").strip().lower() or "timed out"
        raise SpecError(f"cannot reach the Ray cluster at {host}:{port}: {reason}", where,
                        "is `ray start --head` running there, and is the port open from here?") from None


def start_ray(address: str | None, cpus: int, gpus: float, where: str = "--address") -> bool:
    """Join `address`, or start a local Ray with `cpus`; an already initialized Ray is reused. Returns whether
    this call started it (and so should shut it down)."""
    import ray

    from nas.dsl.errors import SpecError

    if address:
        check_reachable(address, where)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=cpus, num_gpus=int(gpus) if gpus else None, **kwargs)
    except ray.exceptions.AuthenticationError:
        raise SpecError(f"the Ray cluster at {address} refused this client's token", where,
                        "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or ~/.ray/auth_token) to the head's token: "
                        "`ray get-auth-token` on the head prints it") from None
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise SpecError(f"cannot start or join Ray: {str(err).splitlines()[0]}", where or "ray.init",
                        f"check ray.address / --address: {ADDRESS_HINT}") from None
    return True


@contextmanager
def ray_connection(address: str | None, resources, where: str = "--address"):
    """Ray for one search, joined (or started) before its run folder is made: a bad address writes nothing.
    Shuts down only what it started."""
    import ray

    started = start_ray(address, resources.cpus, resources.gpus_per_trial * resources.concurrency, where)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def experiment_name(root: Path) -> str:
    """Ray's experiment folder in the run folder: `ray`, then `ray-resume-N` for each resumed run."""
    return "ray" if not (root / "ray").exists() else f"ray-resume-{len(list(root.glob('ray-resume-*'))) + 1}"


def experiment_place(search) -> tuple[str, str]:
    """(storage_path, name) of this run's Ray Tune experiment: `ray/` (then `ray-resume-N/`) in the run folder,
    or `<ray.storage_path>/<run folder name>[-resume-<time>]` when the recipe names a place every node reaches."""
    import time

    root = Path(search.run.path).resolve()
    shared = search.recipe.ray_storage_path
    if shared is None:
        return str(root), experiment_name(root)
    return shared, root.name + (f"-resume-{time.strftime('%Y%m%d-%H%M%S')}" if search.resumed else "")


def run_trials(search, *, address: str | None = None, quiet: bool = False) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from nas.search.trial import trainable

    recipe = search.recipe
    # Our closing reports (failed / nan) carry no val_acc on purpose: ASHA must not rank them.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    res = recipe.resources
    with ray_connection(address, res):
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
        storage_path, name = experiment_place(search)
        searcher = StrategySearcher(search)
        tuner = tune.Tuner(
            fn,
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher,
                                        scheduler=scheduler, num_samples=search.remaining,
                                        max_concurrent_trials=res.concurrency, reuse_actors=True,
                                        time_budget_s=time_left),
            run_config=tune.RunConfig(name=name, storage_path=storage_path, verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=recipe.max_failures)))
        tuner.fit()
        searcher.flush()
