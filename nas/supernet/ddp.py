"""`resources: {workers: N}` in a DNAS recipe: the supernet trained data-parallel by Ray Train's TorchTrainer.

    cluster = connect(recipe, address)          # start or join Ray, check it can hold N workers: fail fast
    result = search_on_workers(recipe, space, data, config, run, address=address)

- Each of the N workers (1 CPU each; 1 GPU each where the cluster has them and `train.device` allows, NCCL
  then, else gloo) runs the epochs of `nas.supernet.dnas` (`run_epoch`/`train_step`, the code of the
  1-worker search) on its contiguous 1/N of every batch of both the weights part and the θ part, so
  `strategy.batch_size` stays the global batch and N workers compute what 1 worker computes on the whole
  batch (`nas.supernet.allreduce` averages the weight and θ gradients before each step).
- Every worker draws the Gumbel noise from its own generator with the same seed, so all of them train the
  same sampled architecture at each step: otherwise the averaged gradient would mix N architectures, and in
  `single_path` mode N different paths would each get 1/N of an update. The noise generator is part of
  the checkpoint.
- Rank 0 reports every epoch through `ray.train.report` with a checkpoint (supernet.pt and history.json,
  the files of a 1-worker run) that Ray Train persists under `RUN_DIR/ddp/epoch_NNNN/`. `--resume` starts
  from the newest checkpoint there (or the run folder's own supernet.pt). At the end the last checkpoint's
  files are copied into the run folder, so it holds what a 1-worker run writes.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.dsl.errors import SpecError
from nas.supernet.dnas import CHECKPOINT, HISTORY, SearchResult, epoch_record, make_loop, run_epoch

RAY_FOLDER = "ddp"
WORKER_CPUS = 1


@dataclass
class Cluster:
    """The Ray this search runs on; `close` shuts it down when `connect` started it."""

    started: bool
    use_gpu: bool
    workers: int

    def close(self) -> None:
        if self.started:
            import ray

            ray.shutdown()
            self.started = False


def connect(recipe, address: str | None = None) -> Cluster:
    """Start a local Ray (resources.cpus) or join `address` / ray.address, and refuse a worker count the
    cluster cannot hold — TorchTrainer would wait for the resources forever."""
    import ray

    from nas.search.tuner import start_ray

    workers = recipe.resources.workers
    started = start_ray(address or recipe.ray_address, recipe.resources.cpus, 0)
    try:
        have = ray.cluster_resources()
        cpus, gpus = have.get("CPU", 0.0), have.get("GPU", 0.0)
        where = recipe.where("resources", "workers")
        if cpus < workers * WORKER_CPUS:
            raise SpecError(f"{workers} workers need {workers * WORKER_CPUS} CPUs but the Ray cluster has {cpus:g}",
                            where, "lower resources.workers, or add nodes to the cluster")
        device = str(recipe.train.get("device", "auto"))
        use_gpu = device.startswith("cuda") or (device == "auto" and gpus >= workers)
        if use_gpu and gpus < workers:
            raise SpecError(f"{workers} workers on CUDA need {workers} GPUs but the Ray cluster has {gpus:g}",
                            where, "lower resources.workers, or set train.device: cpu")
    except BaseException:
        if started:
            ray.shutdown()
        raise
    return Cluster(started, use_gpu, workers)


def search_on_workers(recipe, space, data, config, run, *, address: str | None = None,
                      quiet: bool = False) -> SearchResult:
    """The DNAS search on `recipe.resources.workers` Ray Train workers, resuming from the run folder's newest
    checkpoint when it has one; returns what `nas.supernet.dnas.search` returns."""
    cluster = connect(recipe, address)  # an already running Ray (the CLI's, a test's) is reused, left running
    try:
        state = latest_state(run.path)
        start = state["epoch"] if state else 0
        if start < config.epochs:
            if not quiet:
                print(f"training the supernet on {cluster.workers} workers (Ray Train, "
                      f"{'NCCL' if cluster.use_gpu else 'gloo'}), epochs {start + 1}-{config.epochs}")
            state = _fit(space, data, config, run, state, cluster)
    finally:
        cluster.close()
    run.save_torch(CHECKPOINT, state)
    history = [json.loads(h) for h in state["history"]]
    run.write_json(HISTORY, history)
    loop = make_loop(space, data, config, torch.device("cpu"), torch.Generator())
    loop.restore(state)
    loop.net.temperature = state["temperature"]
    return SearchResult(loop.net, loop.history, loop.expected)


def latest_state(folder: Path) -> dict | None:
    """The newest readable checkpoint: Ray Train's (RUN_DIR/ddp*/epoch_NNNN/) or the run folder's own."""
    candidates = [folder / CHECKPOINT] + list(folder.glob(f"{RAY_FOLDER}*/epoch_*/{CHECKPOINT}"))
    best = None
    for path in candidates:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError):  # absent, or cut off by a kill mid-copy
            continue
        if best is None or state["epoch"] > best["epoch"]:
            best = state
    return best


def _fit(space, data, config, run, state: dict | None, cluster: Cluster) -> dict:
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    root = Path(run.path).resolve()
    earlier = len(list(root.glob(f"{RAY_FOLDER}*")))
    name = RAY_FOLDER if not earlier else f"{RAY_FOLDER}-resume-{earlier}"
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"space": space, "data": data, "config": config, "state": state,
                           "use_gpu": cluster.use_gpu},
        scaling_config=ScalingConfig(num_workers=cluster.workers, use_gpu=cluster.use_gpu,
                                     resources_per_worker={"CPU": WORKER_CPUS, **({"GPU": 1} if cluster.use_gpu else {})}),
        run_config=RunConfig(name=name, storage_path=str(root), failure_config=FailureConfig(max_failures=0),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))
    try:
        result = trainer.fit()
    except Exception as err:  # a worker's SpecError (the search diverged) is the user's; the rest are ours
        raise _user_error(err) or err
    with result.checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / CHECKPOINT, map_location="cpu", weights_only=True)


def _user_error(err: Exception) -> SpecError | None:
    """The SpecError a worker raised, out of Ray Train's WorkerGroupError (each failure wraps the worker's
    exception with its traceback text)."""
    for failure in (getattr(err, "worker_failures", None) or {}).values():
        for cause in (failure, getattr(failure, "_base_exc", None), failure.__cause__):
            if isinstance(cause, SpecError):
                return cause
    return None


def _worker(cfg: dict) -> None:
    """One data-parallel worker (runs in a Ray Train worker process, its process group set up)."""
    import ray.train
    from ray.train import Checkpoint

    from nas.supernet.allreduce import WorkerSync

    torch.set_num_threads(WORKER_CPUS)
    config = cfg["config"]
    if cfg["use_gpu"]:
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")
    loop = make_loop(cfg["space"], cfg["data"], config, device, torch.Generator().manual_seed(config.seed + 2))
    if cfg["state"] is not None:
        loop.restore(cfg["state"])
    sync = WorkerSync()
    for epoch in range(loop.start, config.epochs):
        sums = run_epoch(loop, epoch, sync=sync)
        folder_name = f"epoch_{epoch + 1:04d}"
        if sync.rank != 0:
            ray.train.report({"epoch": epoch + 1}, checkpoint=None, checkpoint_dir_name=folder_name)
            continue
        record = epoch_record(loop, cfg["data"], epoch, sums)
        loop.history.append(record)
        with tempfile.TemporaryDirectory() as tmp:
            torch.save(loop.state(epoch + 1), os.path.join(tmp, CHECKPOINT))
            Path(tmp, HISTORY).write_text(json.dumps(loop.history, indent=1))
            metrics = {k: record[k] for k in ("epoch", "train_loss", "train_acc", "val_acc", "seconds")}
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp), checkpoint_dir_name=folder_name)
