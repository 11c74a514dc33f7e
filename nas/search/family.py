"""`sweep:` in a DNAS recipe: a family of architectures, one DNAS search per value, run as Ray Tune trials
(FBNet-A/B/C came from one search under different targets).

    summary = run_family(recipe, run)           # run: the sweep's nas.runs.RunDir (kind "search")

The run folder:

    recipe.yaml              the recipe, its sweep included (what --resume reads)
    members/<key=value>/     each member's own DNAS run folder, as `nas search` writes one (recipe.yaml without
                             the sweep, supernet.pt, history.json, best.arch.yaml, best/, samples/, summary.json):
                             `nas export` and `nas search --resume` take it like any DNAS run
    family.csv               one row per member: its values, status, params, FLOPs, the supernet's validation
                             accuracy of the derived architecture, the retrained test accuracy, the picks
    summary.json             the same rows (and the sweep), what the CLI's table shows
    ray/ (ray-resume-N/)     Ray Tune's experiment folder

Ray as for multi-trial searches (`nas.search.tuner.start_ray`): a local Ray with `resources.cpus`, or the
cluster at `ray.address` / `--address`. One Tune trial per member, at most `resources.concurrency` at once,
each with `resources.cpus_per_trial` CPUs (its torch threads), actors reused, the datasets shared through
Ray's object store. The trials write their member folders themselves, so on a cluster the run folder must be
on storage every node sees.

Resume: a member whose summary.json exists is finished and kept; any other resumes from the last epoch its
checkpoint holds (or starts, if it has none) — the per-member DNAS resume of `nas.supernet.dnas`.
"""
from __future__ import annotations

import csv
import io
import os
import time
from pathlib import Path
from typing import Any, Callable

from nas.recipe import Recipe
from nas.recipe_sweep import SweepMember, sweep_label, sweep_members
from nas.search.results import _cell

MEMBERS = "members"
FAMILY_CSV = "family.csv"
COLUMNS = ("params", "flops", "search_val_acc", "test_acc", "expected_cost", "search_seconds")


def run_family(recipe: Recipe, run, *, resume: bool = False, quiet: bool = False, address: str | None = None,
               log: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) every member of `recipe.sweep` into the open run folder `run`; returns the summary."""
    from nas.runs import MARKER, RunDir

    log = (lambda line: None) if quiet else (log or print)
    members = sweep_members(recipe)
    if not resume:
        run.write_text("recipe.yaml", recipe.to_yaml())
    began = time.perf_counter()
    pending = []
    for member in members:
        folder = member_folder(run.path, member)
        if (folder / "summary.json").is_file():
            log(f"{member.name}: finished earlier, kept")
            continue
        if not (folder / "recipe.yaml").is_file():  # the member's own run folder, resumable on its own
            with RunDir.create(folder, kind="search", resume=(folder / MARKER).is_file()) as member_run:
                member_run.write_text("recipe.yaml", member.recipe.to_yaml())
        pending.append(member)
    errors: dict[str, str] = {}
    if pending:
        errors = run_members(recipe, run.path, pending, address=address or recipe.ray_address, log=log)
    summary = {"recipe": recipe.name, "sweep": recipe.sweep, "seconds": round(time.perf_counter() - began, 2),
               "members": [family_row(member, run.path, errors.get(member.name)) for member in members]}
    run.write_text(FAMILY_CSV, family_csv(summary["members"], list(recipe.sweep)))
    run.write_json("summary.json", summary)
    return summary


def member_folder(root: Path, member: SweepMember) -> Path:
    return Path(root) / MEMBERS / member.name


# -- the Ray side ----------------------------------------------------------------------------------------------
def run_members(recipe: Recipe, root: Path, members: list[SweepMember], *, address: str | None,
                log: Callable[[str], None]) -> dict[str, str]:
    """One Ray Tune trial per member; returns the error of each member that failed."""
    import ray  # noqa: F401 - fail here, not in Tune, if Ray is missing
    from ray import tune

    from nas.search.tuner import experiment_name, start_ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    res = recipe.resources
    root = Path(root).resolve()
    datasets, keys = {}, {}
    for member in members:
        keys[member.name] = key = _data_key(member.recipe)
        if key not in datasets:
            datasets[key] = _load_data(member.recipe)
    settings = {"threads": max(1, int(res.cpus_per_trial)), "data": keys,
                "folders": {m.name: str(member_folder(root, m)) for m in members}}
    started = start_ray(address, res.cpus, res.gpus_per_trial * res.concurrency)
    try:
        fn = tune.with_parameters(member_trainable, datasets=datasets, settings=settings)
        fn = tune.with_resources(fn, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
        tuner = tune.Tuner(
            fn, param_space={"member": tune.grid_search([m.name for m in members])},
            tune_config=tune.TuneConfig(max_concurrent_trials=res.concurrency, reuse_actors=True),
            run_config=tune.RunConfig(name=experiment_name(root), storage_path=str(root), verbose=0,
                                      callbacks=[_progress_callback(log, recipe)],
                                      failure_config=tune.FailureConfig(max_failures=0)))
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    errors = {}
    for result in results:
        name = result.config["member"]
        metrics = result.metrics or {}
        if result.error is not None:
            errors[name] = str(result.error).strip().splitlines()[-1][:300]
        elif metrics.get("status") == "failed":
            errors[name] = metrics.get("error", "failed")
    return errors


def member_trainable(config: dict, datasets: Any = None, settings: dict | None = None) -> None:
    """The Ray Tune function trainable of one member."""
    from ray import tune

    train_member(config["member"], datasets, settings or {}, tune.report)


def train_member(name: str, datasets: dict, settings: dict, report: Callable[[dict], None]) -> dict:
    """Run one member's DNAS search in this process, into its folder, reporting every epoch; a failure is
    reported (status failed, with the error) and the family goes on."""
    import torch

    from nas.recipe import load_recipe
    from nas.runs import RunDir
    from nas.supernet.strategy import run_dnas

    torch.set_num_threads(settings.get("threads", 1))
    folder = Path(settings["folders"][name])
    try:
        with RunDir.create(folder, kind="search", resume=True) as run:
            recipe = load_recipe(folder / "recipe.yaml")
            epochs = recipe.strategy.options["epochs"]

            def on_epoch(record: dict) -> None:
                report({"epoch": record["epoch"], "epochs": epochs, "val_acc": record["val_acc"],
                        "expected_cost": record["expected_cost"], "status": "running"})

            summary = run_dnas(recipe, run, quiet=True, data=datasets[settings["data"][name]], on_epoch=on_epoch)
    except Exception as exc:  # noqa: BLE001 - a diverged search, a bad data path: this member fails, not the family
        import traceback

        final = {"status": "failed", "error": traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]}
        report(final)
        return final
    final = {"status": "done", "test_acc": (summary.get("retrain") or {}).get("test_acc")}
    report(final)
    return final


def _progress_callback(log: Callable[[str], None], recipe: Recipe):
    from ray.tune import Callback

    class Progress(Callback):
        """Prints each member's epochs as Tune reports them (in the driver)."""

        def __init__(self, log, cost: str):
            self.log, self.cost = log, cost

        def __getstate__(self) -> dict:  # Tune pickles its callbacks into the experiment state; the log stays
            return {}

        def on_trial_result(self, iteration, trials, trial, result, **info):
            from nas.report import human

            name, status = trial.config["member"], result.get("status")
            if status == "running":
                expected = result.get("expected_cost")
                tail = f", E[{self.cost}] {human(expected)}" if expected is not None else ""
                self.log(f"{name}: epoch {result['epoch']}/{result['epochs']}, derived arch val acc "
                         f"{result['val_acc']:.3f}{tail}")
            elif status == "failed":
                self.log(f"{name}: failed: {result.get('error')}")
            elif status == "done":
                acc = result.get("test_acc")
                self.log(f"{name}: done" + (f", retrained test acc {acc:.3f}" if acc is not None else ""))

    return Progress(log, recipe.strategy.options["cost"])


def _data_key(recipe: Recipe) -> str:
    d = recipe.data
    return repr((d.name, d.root, d.size, d.channels, d.val_fraction, d.seed))


def _load_data(recipe: Recipe):
    from nas.data import load_dataset

    d = recipe.data
    return load_dataset(d.name, size=d.size, root=d.root, val_fraction=d.val_fraction, seed=d.seed,
                        channels=d.channels)


# -- the family's table ------------------------------------------------------------------------------------------
def family_row(member: SweepMember, root: Path, error: str | None = None) -> dict:
    """A member's row, read from its own summary.json (absent: the member did not finish)."""
    from nas.runs import read_json

    folder = member_folder(root, member)
    row = {"member": member.name, "values": member.values, "folder": f"{MEMBERS}/{member.name}"}
    if not (folder / "summary.json").is_file():
        return row | {"status": "failed", "error": error or "did not finish"}
    summary = read_json(folder / "summary.json")
    best, final = summary["best"], summary.get("final_epoch") or {}
    retrain = summary.get("retrain") or {}
    return row | {"status": "done", "arch": f"{row['folder']}/{best['file']}", "params": best["params"],
                  "flops": best["flops"], "search_val_acc": final.get("val_acc"), "test_acc": retrain.get("test_acc"),
                  "expected_cost": final.get("expected_cost"), "search_seconds": summary.get("search_seconds"),
                  "picks": " ".join(str(v) for v in best["assignment"].values())}


def family_csv(rows: list[dict], keys: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["member", *keys, "status", *COLUMNS, "arch", "picks", "error"])
    for row in rows:
        writer.writerow([row["member"], *(sweep_label(row["values"][k]) for k in keys), row["status"],
                         *(_cell(row.get(c)) for c in COLUMNS), row.get("arch", ""), row.get("picks", ""),
                         row.get("error", "")])
    return out.getvalue()


def family_table(summary: dict):
    """A rich table of the family (one row per member), for the CLI to print."""
    from rich.table import Table

    from nas.report import human

    keys = list(summary["sweep"])
    out = Table(title=f"{summary['recipe']}: a family of {len(summary['members'])} DNAS searches")
    for column in (*keys, "params", "FLOPs", "search val acc", "test acc", "architecture"):
        out.add_column(column, justify="left" if column == "architecture" else "right")
    for row in summary["members"]:
        values = [sweep_label(row["values"][k]) for k in keys]
        if row["status"] != "done":
            out.add_row(*values, "-", "-", "-", "-", f"failed: {row.get('error', '')}")
            continue
        out.add_row(*values, human(row["params"]), human(row["flops"]), _acc(row["search_val_acc"]),
                    _acc(row["test_acc"]), row["arch"])
    return out


def _acc(value: float | None) -> str:
    return f"{value:.3f}" if value is not None else "-"
