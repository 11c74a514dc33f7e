"""The recipe schema: every section's keys, types and ranges, checked with located one-line errors.

`nas.recipe.from_data` runs `Validator(doc, file).run()`; it returns the `nas.recipe.Recipe` documented there.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable

from nas.dsl.errors import Location, SpecError, did_you_mean
from nas.dsl.parse import PosDict, PosList
from nas.recipe import (COEFFICIENT_KEYS, DATA_KEYS, EXPORT_FORMATS, METRICS, RAY_KEYS, SPACE_KEYS, STRATEGIES,
                        TIME_UNITS, TOP_KEYS, TRAIN_KEYS, Budget, Constraint, DataSection, Objective, Option, Recipe,
                        Resources, SpaceSection, StrategySection, _key_loc, _loc, _locate, _plain, _posdict,
                        parse_quantity, strategy_info)
from nas.recipe_sweep import sweep_members, sweep_spots

STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "abfs", "abfss")  # what Ray Tune's pyarrow storage reads


class Validator:
    def __init__(self, doc: PosDict, file: str):
        self.doc = doc
        self.file = file

    def run(self) -> Recipe:
        doc = self.doc
        for key in doc:
            if key not in TOP_KEYS:
                raise SpecError(f"unknown recipe key '{key}'", _key_loc(doc, key), did_you_mean(str(key), TOP_KEYS))
        if "space" not in doc:
            raise SpecError("missing 'space'", _loc(doc), "e.g. space: {source: fbnet, width: 0.25}")
        if "strategy" not in doc:
            raise SpecError("missing 'strategy'", _loc(doc), f"e.g. strategy: tpe (one of {', '.join(STRATEGIES)})")
        name = doc.get("name", Path(self.file).stem if self.file != "<string>" else "recipe")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise SpecError(f"recipe name must be a plain word, got {name!r}", _loc(doc, "name"),
                            "letters, digits, '_', '-', '.'")
        data = self.data()
        strategy = self.strategy()
        objectives = self.objectives(strategy)
        train = self.train()
        seed = _int(doc, "seed", 0, minimum=0)
        resources = self.resources(strategy)
        recipe = Recipe(
            name=name, file=self.file, doc=doc, space=self.space(), data=data, strategy=strategy,
            objectives=objectives, constraints=self.constraints(), train=train, budget=self.budget(),
            early_stop=self.early_stop(train), resources=resources, ray_address=self.ray(),
            storage=self.storage(), seed=seed, export=self.export(), retrain=self.retrain(), sweep=self.sweep(),
            description=str(doc.get("description", "")), ray_storage_path=self.ray_storage_path(),
            max_failures=_int(self.section("ray", "address", RAY_KEYS), "max_failures", 0, minimum=0),
            study_name=self.study_name())
        if recipe.sweep:
            if recipe.resources.workers > 1:
                raise SpecError("a sweep runs its members as Ray Tune trials of one worker each",
                                recipe.where("resources", "workers"),
                                "drop resources.workers, or run one data-parallel search per value with --set")
            sweep_members(recipe)  # every member is a valid recipe, or a located error now
        return recipe

    def section(self, key: str, short: str | None = None, keys: Iterable[str] | None = None) -> PosDict:
        value = self.doc.get(key)
        if value is None:
            return _posdict(_loc(self.doc, key) if key in self.doc else _loc(self.doc))
        if short is not None and isinstance(value, str):
            out = _posdict(_loc(self.doc, key))
            out[short] = value
            _locate(out, short, _loc(self.doc, key))
            return out
        if not isinstance(value, dict):
            raise SpecError(f"'{key}' must be a mapping", _loc(self.doc, key),
                            f"e.g. {key}: {{{short}: ...}}" if short else None)
        if keys is not None:
            for k in value:
                if k not in keys:
                    raise SpecError(f"unknown {key} key '{k}'", _key_loc(value, k), did_you_mean(str(k), keys))
        return value

    def space(self) -> SpaceSection:
        sec = self.section("space", "source", SPACE_KEYS)
        source = sec.get("source")
        if not isinstance(source, str) or not source.strip():
            raise SpecError("'space' needs a 'source': a space file or a zoo name", _loc(sec, "source"),
                            "e.g. space: {source: fbnet, width: 0.25}")
        return SpaceSection(
            source=source,
            width=_number(sec, "width", None, positive=True), depth=_number(sec, "depth", None, positive=True),
            size=_int(sec, "size", None, minimum=1), channels=_int(sec, "channels", None, minimum=1),
            classes=_int(sec, "classes", None, minimum=1), bn=self.bn(sec), coefficients=self.coefficients(sec))

    def bn(self, space: PosDict) -> dict | None:
        if space.get("bn") is None:
            return None
        sec = space["bn"]
        if not isinstance(sec, dict) or not sec:
            raise SpecError("space.bn must be a mapping", _loc(space, "bn"), "e.g. bn: {momentum: 0.1}")
        for key in sec:
            if key not in ("eps", "momentum"):
                raise SpecError(f"unknown bn key '{key}'", _key_loc(sec, key),
                                did_you_mean(str(key), ("eps", "momentum")))
        return {key: _number(sec, key, None, positive=True) for key in sec}

    def coefficients(self, space: PosDict) -> dict | None:
        if space.get("coefficients") is None:
            return None
        sec = space["coefficients"]
        if not isinstance(sec, dict):
            raise SpecError("space.coefficients must be a mapping", _loc(space, "coefficients"),
                            "e.g. coefficients: {phi: 1, step: 0.1, tolerance: 0.1}")
        for key in sec:
            if key not in COEFFICIENT_KEYS:
                raise SpecError(f"unknown coefficients key '{key}'", _key_loc(sec, key),
                                did_you_mean(str(key), COEFFICIENT_KEYS))
        out = {"phi": _number(sec, "phi", 1.0, positive=True), "step": _number(sec, "step", 0.05, positive=True),
               "tolerance": _number(sec, "tolerance", 0.1, minimum=0.0),
               "maximum": _number(sec, "maximum", 2.0, minimum=1.0)}
        return out

    def data(self) -> DataSection:
        sec = self.section("data", "name", DATA_KEYS)
        from nas.data import DATASETS  # noqa: PLC0415 - the list of dataset names

        name = sec.get("name", "digits")
        if name not in DATASETS:
            raise SpecError(f"unknown dataset '{name}'", _loc(sec, "name"), did_you_mean(str(name), DATASETS))
        root = sec.get("root")
        if root is not None and not isinstance(root, str):
            raise SpecError("data.root must be a path", _loc(sec, "root"))
        val_fraction = _number(sec, "val_fraction", 0.1)
        if not 0 < val_fraction < 1:
            raise SpecError(f"data.val_fraction must be in (0, 1), got {val_fraction}", _loc(sec, "val_fraction"),
                            "a search ranks candidates on the validation split")
        return DataSection(name=name, root=root, size=_int(sec, "size", 32, minimum=1),
                           channels=_int(sec, "channels", None, minimum=1), val_fraction=val_fraction,
                           seed=_int(sec, "seed", 0, minimum=0))

    def strategy(self) -> StrategySection:
        sec = self.section("strategy", "name")
        name = sec.get("name")
        if name not in STRATEGIES:
            raise SpecError(f"unknown strategy '{name}'", _loc(sec, "name"), did_you_mean(str(name), STRATEGIES))
        declared = strategy_info(name, _loc(sec, "name")).OPTIONS
        options = {}
        for key, value in sec.items():
            if key == "name":
                continue
            if key not in declared:
                raise SpecError(f"unknown option '{key}' of strategy '{name}'", _key_loc(sec, key),
                                did_you_mean(str(key), declared) or "this strategy takes no options")
            options[key] = check_option(declared[key], value, f"strategy.{key}", _loc(sec, key))
        for key, option in declared.items():
            options.setdefault(key, option.default)
        return StrategySection(name, options)

    def objectives(self, strategy: StrategySection) -> list[Objective]:
        raw = self.doc.get("objectives", ["accuracy"])
        where = _loc(self.doc, "objectives")
        if isinstance(raw, (str, dict)):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise SpecError("'objectives' must be a non-empty list", where, "e.g. objectives: [accuracy, flops]")
        out = []
        for i, item in enumerate(raw):
            loc = raw.loc(i) if isinstance(raw, PosList) else where
            if isinstance(item, dict) and len(item) == 1:
                metric, direction = next(iter(item.items()))
            elif isinstance(item, str):
                metric, direction = item, None
            else:
                raise SpecError("an objective is a metric name or {metric: max|min}", loc,
                                "e.g. accuracy, or {flops: min}")
            if metric not in METRICS:
                raise SpecError(f"unknown objective metric '{metric}'", loc, did_you_mean(str(metric), METRICS))
            direction = direction or METRICS[metric]
            if direction not in ("max", "min"):
                raise SpecError(f"objective direction must be max or min, got {direction!r}", loc)
            if any(o.metric == metric for o in out):
                raise SpecError(f"objective '{metric}' is given twice", loc)
            out.append(Objective(metric, direction))
        limit = strategy_info(strategy.name).max_objectives
        if limit is not None and len(out) > limit:
            raise SpecError(f"strategy '{strategy.name}' optimizes {limit} objective, got {len(out)}", where,
                            "use nsga2 (or random/grid) for a Pareto front of several objectives")
        return out

    def constraints(self) -> list[Constraint]:
        sec = self.section("constraints")
        out = []
        for metric, text in sec.items():
            loc = _loc(sec, metric)
            if metric not in METRICS or metric == "accuracy":
                raise SpecError(f"unknown constraint metric '{metric}'", _key_loc(sec, metric),
                                did_you_mean(str(metric), [m for m in METRICS if m != "accuracy"]))
            out.append(parse_constraint(metric, text, loc))
        return out

    def train(self) -> dict:
        sec = self.section("train", None, TRAIN_KEYS)
        from nas.train import TrainConfig

        defaults = asdict(TrainConfig(epochs=2))
        out = {}
        for key in TRAIN_KEYS:
            value = sec.get(key, defaults[key])
            default = defaults[key]
            loc = _loc(sec, key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise SpecError(f"train.{key} must be true or false, got {value!r}", loc)
            elif isinstance(default, int) and key != "grad_clip":
                value = _int(sec, key, default, minimum=1)
            elif isinstance(default, float) or key == "grad_clip":
                if not (value is None and key == "grad_clip"):
                    value = _number(sec, key, default, minimum=0.0)
            elif key == "optimizer" and value not in ("sgd", "adamw"):
                raise SpecError(f"unknown optimizer '{value}'", loc, "use sgd or adamw")
            elif not isinstance(value, str):
                raise SpecError(f"train.{key} must be a string", loc)
            out[key] = value
        if not out["lr"] > 0:
            raise SpecError(f"train.lr must be > 0, got {out['lr']}", _loc(sec, "lr"))
        for key in ("label_smoothing", "drop_path"):
            if not out[key] < 1:
                raise SpecError(f"train.{key} must be in [0, 1), got {out[key]}", _loc(sec, key))
        return out

    def budget(self) -> Budget:
        sec = self.section("budget", None, ("trials", "time"))
        time_s = None
        if "time" in sec:
            time_s = parse_duration(sec["time"], _loc(sec, "time"))
        return Budget(_int(sec, "trials", 20, minimum=1), time_s)

    def early_stop(self, train: dict) -> dict | None:
        if self.doc.get("early_stop") is None:
            return None
        sec = self.section("early_stop", None, ("asha",))
        asha = sec.get("asha")
        if not isinstance(asha, dict):
            raise SpecError("early_stop.asha must be a mapping", _loc(sec, "asha"),
                            "e.g. early_stop: {asha: {grace: 1, reduction: 3}}")
        for key in asha:
            if key not in ("grace", "reduction"):
                raise SpecError(f"unknown ASHA option '{key}'", _key_loc(asha, key),
                                did_you_mean(str(key), ("grace", "reduction")))
        grace = _int(asha, "grace", 1, minimum=1)
        reduction = _number(asha, "reduction", 3.0)
        if not reduction > 1:
            raise SpecError(f"ASHA reduction must be > 1, got {reduction}", _loc(asha, "reduction"))
        if grace > train["epochs"]:
            raise SpecError(f"ASHA grace {grace} exceeds train.epochs {train['epochs']}", _loc(asha, "grace"),
                            "a trial trains at most train.epochs epochs")
        return {"asha": {"grace": grace, "reduction": reduction}}

    def resources(self, strategy: StrategySection) -> Resources:
        sec = self.section("resources", None, ("cpus", "cpus_per_trial", "gpus_per_trial", "concurrency", "workers"))
        cpus = _int(sec, "cpus", os.cpu_count() or 1, minimum=1)
        per_trial = _number(sec, "cpus_per_trial", 1.0, positive=True)
        gpus = _number(sec, "gpus_per_trial", 0.0, minimum=0.0)
        default_conc = max(1, int(cpus // per_trial))
        concurrency = _int(sec, "concurrency", default_conc, minimum=1)
        if "address" not in self.doc.get("ray", {}) and per_trial > cpus:
            raise SpecError(f"a trial needs {per_trial:g} CPUs but the local Ray has {cpus}",
                            _loc(sec, "cpus_per_trial"), "lower resources.cpus_per_trial or raise resources.cpus")
        return Resources(cpus, int(per_trial) if float(per_trial).is_integer() else per_trial,
                         int(gpus) if float(gpus).is_integer() else gpus, concurrency,
                         self.workers(sec, strategy, cpus))

    def workers(self, sec: PosDict, strategy: StrategySection, cpus: int) -> int:
        """Data-parallel workers of a DNAS supernet (Ray Train), one CPU (or GPU) each."""
        workers = _int(sec, "workers", 1, minimum=1)
        if workers > 1 and strategy.name != "dnas":
            raise SpecError(f"resources.workers is for strategy dnas, not {strategy.name}", _loc(sec, "workers"),
                            "a multi-trial search runs trials side by side: use resources.concurrency")
        if workers > cpus and "address" not in self.doc.get("ray", {}):
            raise SpecError(f"{workers} workers need {workers} CPUs but the local Ray has {cpus}",
                            _loc(sec, "workers"), "lower resources.workers or raise resources.cpus")
        return workers

    def ray(self) -> str | None:
        sec = self.section("ray", "address", RAY_KEYS)
        address = sec.get("address")
        if address is not None and not isinstance(address, str):
            raise SpecError("ray.address must be a string", _loc(sec, "address"), "e.g. ray://head:10001 or auto")
        return address

    def ray_storage_path(self) -> str | None:
        """A folder every node can reach (made absolute: a resume may start elsewhere), or a URI Ray supports."""
        sec = self.section("ray", "address", RAY_KEYS)
        value = sec.get("storage_path")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"ray.storage_path must be a folder or a URI, got {value!r}", _loc(sec, "storage_path"),
                            "e.g. /shared/nas-results or s3://bucket/nas; leave it out for the run folder")
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", value)
        if scheme is None:
            return os.path.abspath(os.path.expanduser(value))
        if scheme.group(1).lower() not in STORAGE_SCHEMES:
            raise SpecError(f"ray.storage_path: Ray cannot write to '{scheme.group(1)}://'",
                            _loc(sec, "storage_path"), f"one of {', '.join(s + '://' for s in STORAGE_SCHEMES)} "
                                                       "or a shared folder")
        return value

    def study_name(self) -> str | None:
        value = self.doc.get("study_name")
        if value is not None and not (isinstance(value, str) and value.strip() and len(value) <= 500):
            raise SpecError(f"study_name must be a non-empty string, got {value!r}", _loc(self.doc, "study_name"),
                            "processes that give the same storage and study_name share one Optuna study")
        return value

    def storage(self) -> str | None:
        value = self.doc.get("storage")
        if value is not None and not (isinstance(value, str) and "://" in value):
            raise SpecError(f"storage must be an SQLAlchemy URL, got {value!r}", _loc(self.doc, "storage"),
                            "e.g. sqlite:///study.db or postgresql://user@host/db; leave it out for the run folder")
        return value

    def export(self) -> dict | None:
        if self.doc.get("export") is None:
            return None
        sec = self.section("export", None, ("formats",))
        formats = sec.get("formats", ["yaml", "py"])
        if isinstance(formats, str):
            formats = [f.strip() for f in formats.split(",")]
        if not isinstance(formats, list) or not formats:
            raise SpecError("export.formats must be a non-empty list", _loc(sec, "formats"), "e.g. [yaml, py]")
        for fmt in formats:
            if fmt not in EXPORT_FORMATS:
                raise SpecError(f"unknown export format '{fmt}'", _loc(sec, "formats"),
                                did_you_mean(str(fmt), EXPORT_FORMATS))
        return {"formats": list(formats)}

    def retrain(self) -> dict | None:
        if self.doc.get("retrain") is None:
            return None
        sec = self.section("retrain", None, ("epochs", "inherit"))
        inherit = sec.get("inherit", False)
        if not isinstance(inherit, bool):
            raise SpecError("retrain.inherit must be true or false", _loc(sec, "inherit"))
        return {"epochs": _int(sec, "epochs", 10, minimum=1), "inherit": inherit}

    def sweep(self) -> dict | None:
        """Shape only; `Validator.run` then checks every member recipe (nas.recipe_sweep.sweep_members)."""
        if self.doc.get("sweep") is None:
            return None
        return {key: _plain(values) for key, (values, _) in sweep_spots(self.doc["sweep"]).items()}


def check_option(option: Option, value: Any, name: str, where: Location) -> Any:
    if value is None and option.default is None:  # an optional option left unset (a saved recipe writes null)
        return None
    kinds = option.kind if isinstance(option.kind, tuple) else (option.kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if option.choices is not None and value not in option.choices:
        raise SpecError(f"{name} must be one of {', '.join(map(str, option.choices))}, got {value!r}", where,
                        did_you_mean(str(value), map(str, option.choices)))
    if not ok or (option.check is not None and not option.check(value)):
        expected = "/".join(k.__name__ for k in kinds)
        raise SpecError(f"bad value {_plain(value)!r} for {name} (expected {expected})", where, option.hint or None)
    return value


def parse_constraint(metric: str, text: Any, where: Location) -> Constraint:
    match = re.fullmatch(r"\s*(<=|>=|<|>)\s*(.+)", str(text)) if isinstance(text, str) else None
    if match is None:
        raise SpecError(f"bad constraint for {metric}: {text!r}", where, 'write it as a comparison, e.g. "<= 20M"')
    limit = parse_quantity(match.group(2), where, f"{metric} limit")
    if match.group(1) in ("<=", "<") and limit <= 0:
        raise SpecError(f"constraint {metric} {text} can never hold", where, f"every architecture has {metric} > 0")
    return Constraint(metric, match.group(1), limit, str(text), where)


def parse_duration(value: Any, where: Location) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", str(value))
        if not match or match.group(2) not in TIME_UNITS:
            raise SpecError(f"bad time budget {value!r}", where, "seconds, or e.g. 30s, 10m, 1h")
        seconds = float(match.group(1)) * TIME_UNITS[match.group(2)]
    if not seconds > 0 or not math.isfinite(seconds):
        raise SpecError(f"time budget must be > 0, got {value!r}", where)
    return seconds


def _int(mapping: dict, key: str, default: Any, minimum: int | None = None) -> Any:
    value = mapping.get(key, default)
    if value is None and default is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        bound = f" ≥ {minimum}" if minimum is not None else ""
        raise SpecError(f"'{key}' must be an integer{bound}, got {value!r}", _loc(mapping, key))
    return value


def _number(mapping: dict, key: str, default: Any, positive: bool = False, minimum: float | None = None) -> Any:
    value = mapping.get(key, default)
    if value is None and default is None:
        return None
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    if bad or (positive and value <= 0) or (minimum is not None and value < minimum):
        need = " > 0" if positive else (f" ≥ {minimum:g}" if minimum is not None else "")
        raise SpecError(f"'{key}' must be a number{need}, got {value!r}", _loc(mapping, key))
    return float(value)
