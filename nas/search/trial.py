"""One search trial as a Ray Tune function trainable: resolve → build → train, reporting every epoch.

The dataset arrives once through Ray's object store (`tune.with_parameters`), the space and settings with
it; the config of a trial is only its number and its picks. Each epoch reports `val_acc` so that ASHA can
stop the trial; every report carries the Ray node (id and IP) the trial runs on. A NaN loss and an
exception end the trial with a last report whose `status` says so
(`nan` or `failed`, with the error), so the driver records it as failed and the search goes on.

Fault injection (tests only): settings["inject"] = {"raise_rate": 0.3, "nan": [2], "seed": 0,
"trace": "/path"} makes a seeded ~30% of trials raise, the listed trials go NaN, and appends the number of
every trial that finished training to the trace file (to check that resume never trains a trial twice).
The driver reads it from the NAS_SEARCH_INJECT environment variable (JSON), so a CLI run can be injected too.
"""
from __future__ import annotations

import json
import os
import random
import time
import traceback
from typing import Any

INJECT_ENV = "NAS_SEARCH_INJECT"


def injection_from_env() -> dict | None:
    text = os.environ.get(INJECT_ENV)
    return json.loads(text) if text else None


def should_raise(inject: dict | None, number: int) -> bool:
    if not inject or not inject.get("raise_rate"):
        return False
    return random.Random(f"{inject.get('seed', 0)}-{number}").random() < inject["raise_rate"]


def _poison(model) -> None:
    """Make every forward pass return NaN: the real NaN path of the training loop then ends the trial."""
    model.register_forward_hook(lambda module, inputs, output: output * float("nan"))


def fit_size(data: Any, size: int) -> Any:
    """The data at the architecture's input size (a resolution choice, e.g. EfficientNet's γ), resized once
    per size in this worker."""
    if data.size == size:
        return data
    import dataclasses

    import torch.nn.functional as F

    key = (id(data), size)
    if key not in _RESIZED:
        def resize(split):
            x = F.interpolate(split.x, size=(size, size), mode="bilinear", align_corners=False)
            return dataclasses.replace(split, x=x.contiguous())

        _RESIZED[key] = dataclasses.replace(data, train=resize(data.train), val=resize(data.val),
                                            test=resize(data.test), size=size)
    return _RESIZED[key]


_RESIZED: dict = {}


def train_candidate(assignment: dict, number: int, data: Any, settings: dict, report) -> dict:
    """Train one candidate in this process; `report(metrics)` after every epoch. Returns the final metrics."""
    import torch

    import nas
    from nas.train import TrainConfig, train

    torch.set_num_threads(max(1, int(settings.get("threads", 1))))
    began = time.perf_counter()
    inject = settings.get("inject")
    try:
        if should_raise(inject, number):
            raise RuntimeError(f"injected failure in trial {number}")
        arch = settings["space"].resolve(assignment)
        data = fit_size(data, arch.plan().input_shape[-1])
        seed = settings["seed"] + number
        model = nas.build(arch, seed=seed)
        if inject and number in inject.get("nan", []):
            _poison(model)
        result = train(model, data, TrainConfig(**settings["train"], seed=seed),
                       callback=lambda m: report({"val_acc": m["val_acc"], "train_loss": m["train_loss"],
                                                  "epoch": m["epoch"], "status": "running"}))
    except Exception as exc:  # noqa: BLE001 - any error of a candidate is recorded, the search goes on
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        final = {"status": "failed", "error": last[:300], "seconds": time.perf_counter() - began}
        report(final)
        return final
    if inject and inject.get("trace"):
        with open(inject["trace"], "a", encoding="utf-8") as handle:
            handle.write(f"{number}\n")
    final = {"status": "nan" if result.status == "nan" else "done", "seconds": time.perf_counter() - began,
             "epoch": len(result.history)}
    if result.status == "nan":
        final["error"] = f"loss became NaN at epoch {result.final.get('epoch')}"
    report(final)
    return final


def trainable(config: dict, data: Any = None, settings: dict | None = None) -> None:
    """The Ray Tune function trainable (see the module docstring). Every report says which node ran it."""
    import ray
    from ray import tune

    node = {"node_id": ray.get_runtime_context().get_node_id(), "node_ip": ray.util.get_node_ip_address()}
    train_candidate(config["assignment"], config["number"], data, settings or {},
                    lambda metrics: tune.report({**metrics, **node}))
