"""Recipes: one YAML file per search, for every strategy (multi-trial and DNAS alike).

    recipe = load_recipe("recipes/fbnet_tpe.yaml", overrides=["budget.trials=8"])

A `Recipe` (stable shape, read by `nas.search` and `nas.supernet`):

    recipe.name: str                     recipe.file: str (path of the YAML, or "<string>")
    recipe.space: SpaceSection           source (file or zoo name), width, depth, size, channels, classes,
                                         bn, coefficients; `recipe.load_space(data)` applies them (size/channels/
                                         classes default to the dataset's)
    recipe.data: DataSection             name, root, size, channels, val_fraction, seed
    recipe.strategy: StrategySection     name, options (dict: the strategy's declared options, defaults filled)
    recipe.objectives: list[Objective]   metric ("accuracy" | "flops" | "params" | "latency"), direction
    recipe.constraints: list[Constraint] metric, op ("<=" | ">=" | "<" | ">"), limit (float), where (Location)
    recipe.train: dict                   TrainConfig fields (`recipe.train_config(seed=...)` builds one)
    recipe.budget: Budget                trials (int), time_s (float | None)
    recipe.early_stop: dict | None       {"asha": {"grace": int, "reduction": float}}
    recipe.resources: Resources          cpus (total), cpus_per_trial, gpus_per_trial, concurrency
    recipe.ray_address: str | None       recipe.storage: str | None (Optuna storage URL; None = run folder)
    recipe.seed: int                     recipe.export: dict | None ({"formats": [...]})
    recipe.retrain: dict | None          {"epochs": int, "inherit": bool}  (shape-checked only here)
    recipe.sweep: dict | None            {"key.path": [values, ...]}       (shape-checked only here)
    recipe.doc: PosDict                  the parsed document after `--set` overrides (positions kept)
    recipe.where(*path) -> Location      location of a key path, for located errors
    recipe.as_dict() -> dict             the resolved recipe (defaults filled), written into the run folder

Strategy-specific options are validated by the strategy that owns them: `STRATEGIES` maps each name to
"module:attribute", an object with `OPTIONS: dict[str, Option]` and `max_objectives: int | None` (None =
any number). Unknown options are located errors with a did-you-mean. Any other error is a located one-line
`SpecError` too.
"""
from __future__ import annotations

import importlib
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from nas.dsl.errors import Location, SpecError, did_you_mean
from nas.dsl.parse import PosDict, PosList, parse_yaml, read_yaml

STRATEGIES: dict[str, str] = {
    "random": "nas.search.strategies.random:RandomSearch",
    "grid": "nas.search.strategies.grid:GridSearch",
    "evolution": "nas.search.strategies.evolution:RegularizedEvolution",
    "reinforce": "nas.search.strategies.reinforce:Reinforce",
    "tpe": "nas.search.strategies.optuna:TPE",
    "nsga2": "nas.search.strategies.optuna:NSGA2",
    "dnas": "nas.supernet:STRATEGY",
}
METRICS = {"accuracy": "max", "flops": "min", "params": "min", "latency": "min"}
TOP_KEYS = ("name", "description", "space", "data", "strategy", "objectives", "constraints", "train", "budget",
            "early_stop", "resources", "ray", "storage", "seed", "export", "retrain", "sweep")
SPACE_KEYS = ("source", "width", "depth", "size", "channels", "classes", "bn", "coefficients")
COEFFICIENT_KEYS = ("phi", "step", "tolerance", "maximum")
DATA_KEYS = ("name", "root", "size", "channels", "val_fraction", "seed")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "warmup_epochs",
              "label_smoothing", "drop_path", "grad_clip", "augment", "flip", "device", "eval_batch_size")
EXPORT_FORMATS = ("py", "yaml", "weights", "torchscript", "onnx")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "ms": 1.0}
_TIME = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Option:
    """One option a strategy accepts: its default, its type(s), and an optional check with a hint."""

    default: Any
    kind: type | tuple = object
    hint: str = ""
    check: Callable[[Any], bool] | None = None
    choices: tuple | None = None


@dataclass
class SpaceSection:
    source: str
    width: float | None = None
    depth: float | None = None
    size: int | None = None
    channels: int | None = None
    classes: int | None = None
    bn: dict | None = None  # {eps, momentum}: replaces the space's batch-norm settings
    coefficients: dict | None = None  # {phi, step, tolerance, maximum}: search EfficientNet's (α, β, γ)


@dataclass
class DataSection:
    name: str = "digits"
    root: str | None = None
    size: int = 32
    channels: int | None = None
    val_fraction: float = 0.1
    seed: int = 0


@dataclass
class StrategySection:
    name: str
    options: dict = field(default_factory=dict)


@dataclass
class Objective:
    metric: str
    direction: str  # "max" | "min"


@dataclass
class Constraint:
    metric: str
    op: str
    limit: float
    text: str = ""
    where: Location = field(default_factory=Location, compare=False, repr=False)

    def violation(self, value: float) -> float:
        """≤ 0 when satisfied; otherwise how far off, relative to the limit (Optuna's convention)."""
        scale = abs(self.limit) or 1.0
        amount = (value - self.limit if self.op in ("<=", "<") else self.limit - value) / scale
        return amount if self.ok(value) or amount > 0 else 1e-9  # a strict bound met with equality

    def ok(self, value: float) -> bool:
        return {"<=": value <= self.limit, "<": value < self.limit,
                ">=": value >= self.limit, ">": value > self.limit}[self.op]


@dataclass
class Budget:
    trials: int = 20
    time_s: float | None = None


@dataclass
class Resources:
    cpus: int
    cpus_per_trial: float = 1
    gpus_per_trial: float = 0
    concurrency: int = 1


@dataclass
class Recipe:
    name: str
    file: str
    doc: PosDict
    space: SpaceSection
    data: DataSection
    strategy: StrategySection
    objectives: list[Objective]
    constraints: list[Constraint]
    train: dict
    budget: Budget
    early_stop: dict | None
    resources: Resources
    ray_address: str | None
    storage: str | None
    seed: int
    export: dict | None
    retrain: dict | None
    sweep: dict | None
    description: str = ""

    def where(self, *path: Any) -> Location:
        return _where(self.doc, path)

    def load_space(self, data: Any = None):
        """The space with the recipe's transforms; input size, channels and classes follow `data` unless set."""
        from nas.dsl import load
        from nas.zoo import resolve_source

        source = _space_path(self.space.source, self.file)
        space = load(resolve_source(source))
        if not space.choices() and self.strategy.name != "dnas" and not self.space.coefficients:
            raise SpecError(f"space '{space.name}' has no choices: there is nothing to search",
                            self.where("space"), "use a search space (e.g. fbnet, nasnet, mobilenetv3)")
        channels = self.space.channels or (data.channels if data is not None else None)
        size = self.space.size or (data.size if data is not None else self.data.size)
        classes = self.space.classes or (data.classes if data is not None else None)
        if self.space.width is not None:
            space = space.with_width(self.space.width)
        if self.space.depth is not None:
            space = space.with_depth(self.space.depth)
        space = space.with_input(channels=channels, size=size)
        space = space.with_classes(classes) if classes else space
        if self.space.bn:  # e.g. TF-ported momentum 0.01 is too slow for the running stats of a short trial
            doc = space.clone_doc()
            doc["bn"] = dict(doc.get("bn") or {}, **self.space.bn)
            space = space.copy_with(doc)
        if self.space.coefficients:
            from nas.scaling import coefficient_grid
            from nas.search.coefficients import CoefficientSpace

            c = self.space.coefficients
            space = CoefficientSpace(space, coefficient_grid(c["step"], c["tolerance"], c["maximum"]), c["phi"],
                                     source=self.space.source)
        return space

    def train_config(self, **changes):
        from nas.train import TrainConfig

        return TrainConfig(**{**self.train, "seed": self.seed, **changes})

    def as_dict(self) -> dict:
        out = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["space"] = {k: v for k, v in asdict(self.space).items() if v is not None}
        beside = _space_path(self.space.source, self.file)
        if beside != self.space.source:  # a file next to the recipe: keep it findable from the run folder
            out["space"]["source"] = str(Path(beside).resolve())
        out["data"] = {k: v for k, v in asdict(self.data).items() if v is not None}
        out["strategy"] = {"name": self.strategy.name, **_plain(self.strategy.options)}
        out["objectives"] = [{o.metric: o.direction} for o in self.objectives]
        out["constraints"] = {c.metric: c.text for c in self.constraints}
        out["train"] = dict(self.train)
        out["budget"] = {"trials": self.budget.trials, **({"time": self.budget.time_s} if self.budget.time_s else {})}
        for key, value in (("early_stop", self.early_stop), ("export", self.export), ("retrain", self.retrain),
                           ("sweep", self.sweep)):
            if value is not None:
                out[key] = _plain(value)
        out["resources"] = asdict(self.resources)
        if self.ray_address:
            out["ray"] = {"address": self.ray_address}
        if self.storage:
            out["storage"] = self.storage
        out["seed"] = self.seed
        return out

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.as_dict(), sort_keys=False, default_flow_style=None, width=110)


# -- entry points --------------------------------------------------------------------------------------------
def load_recipe(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Recipe:
    path = os.fspath(path)
    doc = read_yaml(path) if not os.path.isdir(path) else None
    if doc is None:
        raise SpecError("is a directory, expected a recipe YAML file", Location(path),
                        "to continue a search, use --resume RUN_DIR")
    return from_data(doc, path, overrides)


def loads_recipe(text: str, file: str = "<string>", overrides: Iterable[str] = ()) -> Recipe:
    return from_data(parse_yaml(text, file), file, overrides)


def from_data(doc: Any, file: str, overrides: Iterable[str] = ()) -> Recipe:
    if not isinstance(doc, dict):
        raise SpecError("a recipe must be a mapping", getattr(doc, "where", Location(file)),
                        "start with 'space:' and 'strategy:'")
    for item in overrides:
        apply_override(doc, item)
    return _Validator(doc, file).run()


def apply_override(doc: PosDict, text: str) -> None:
    """`key.path=value` (the value is YAML: 3, 0.1, tpe, [a, b], {grace: 1}) sets one key, making parents."""
    where = Location(f"--set {text}")
    if "=" not in text:
        raise SpecError("--set expects key.path=value", where, "e.g. --set budget.trials=8")
    path, _, value_text = text.partition("=")
    keys = path.strip().split(".")
    if not path.strip() or any(not k for k in keys):
        raise SpecError(f"bad key path '{path}'", where, "dotted keys, e.g. strategy.population=20")
    value = parse_yaml(value_text, f"--set {path}") if value_text.strip() else None
    node = doc
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None or (isinstance(child, str) and depth == 0 and key in ("strategy", "space")):
            # `strategy: tpe` / `space: fbnet` written short: --set strategy.x=.. expands it to a mapping
            mapping = _posdict(where)
            if isinstance(child, str):
                mapping["name" if key == "strategy" else "source"] = child
            node[key] = child = mapping
            _locate(node, key, where)
        if not isinstance(child, dict):
            raise SpecError(f"'{'.'.join(keys[:depth + 1])}' is not a mapping", where,
                            f"it holds {child!r}; set it as a whole")
        node = child
    node[keys[-1]] = value
    _locate(node, keys[-1], where)


# -- validation ----------------------------------------------------------------------------------------------
class _Validator:
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
        resources = self.resources()
        return Recipe(
            name=name, file=self.file, doc=doc, space=self.space(), data=data, strategy=strategy,
            objectives=objectives, constraints=self.constraints(), train=train, budget=self.budget(),
            early_stop=self.early_stop(train), resources=resources, ray_address=self.ray(),
            storage=self.storage(), seed=seed, export=self.export(), retrain=self.retrain(), sweep=self.sweep(),
            description=str(doc.get("description", "")))

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
                raise SpecError(f"unknown bn key '{key}'", _key_loc(sec, key), did_you_mean(str(key), ("eps", "momentum")))
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

    def resources(self) -> Resources:
        sec = self.section("resources", None, ("cpus", "cpus_per_trial", "gpus_per_trial", "concurrency"))
        cpus = _int(sec, "cpus", os.cpu_count() or 1, minimum=1)
        per_trial = _number(sec, "cpus_per_trial", 1.0, positive=True)
        gpus = _number(sec, "gpus_per_trial", 0.0, minimum=0.0)
        default_conc = max(1, int(cpus // per_trial))
        concurrency = _int(sec, "concurrency", default_conc, minimum=1)
        if "address" not in self.doc.get("ray", {}) and per_trial > cpus:
            raise SpecError(f"a trial needs {per_trial} CPUs but the local Ray has {cpus}",
                            _loc(sec, "cpus_per_trial"), "lower resources.cpus_per_trial or raise resources.cpus")
        return Resources(cpus, int(per_trial) if float(per_trial).is_integer() else per_trial,
                         int(gpus) if float(gpus).is_integer() else gpus, concurrency)

    def ray(self) -> str | None:
        sec = self.section("ray", "address", ("address",))
        address = sec.get("address")
        if address is not None and not isinstance(address, str):
            raise SpecError("ray.address must be a string", _loc(sec, "address"), "e.g. ray://head:10001 or auto")
        return address

    def storage(self) -> str | None:
        value = self.doc.get("storage")
        if value is None:
            return None
        if not isinstance(value, str) or "://" not in value:
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
            raise SpecError("export.formats must be a list", _loc(sec, "formats"), "e.g. [yaml, py]")
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
        if self.doc.get("sweep") is None:
            return None
        sec = self.section("sweep")
        out = {}
        for key, values in sec.items():
            if not isinstance(key, str) or not all(key.split(".")):
                raise SpecError(f"sweep key '{key}' must be a dotted key path", _key_loc(sec, key))
            if not isinstance(values, list) or not values:
                raise SpecError(f"sweep '{key}' must be a non-empty list of values", _loc(sec, key),
                                f"e.g. {key}: [0.1, 0.2]")
            out[key] = _plain(values)
        return out


# -- shared pieces -------------------------------------------------------------------------------------------
def strategy_info(name: str, where: Location | None = None):
    """The object behind STRATEGIES[name] (its OPTIONS and max_objectives), imported on demand."""
    module, _, attr = STRATEGIES[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        raise SpecError(f"strategy '{name}' is not available in this installation", where,
                        f"{STRATEGIES[name]} could not be imported") from None


def check_option(option: Option, value: Any, name: str, where: Location) -> Any:
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


def parse_quantity(text: Any, where: Location, what: str) -> float:
    """20M, 1.5G, 300k, 5ms, 1e6 → a float."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SUFFIX:
        raise SpecError(f"bad {what} {text!r}", where, "a number with an optional K/M/G suffix, e.g. 20M")
    return float(match.group(1)) * _SUFFIX[match.group(2).lower()]


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
        if not match or match.group(2) not in _TIME:
            raise SpecError(f"bad time budget {value!r}", where, "seconds, or e.g. 30s, 10m, 1h")
        seconds = float(match.group(1)) * _TIME[match.group(2)]
    if not seconds > 0 or not math.isfinite(seconds):
        raise SpecError(f"time budget must be > 0, got {value!r}", where)
    return seconds


def _space_path(source: str, recipe_file: str) -> str:
    """A space file relative to the recipe's folder when it is there, else as given (path or zoo name)."""
    beside = Path(recipe_file).parent / source
    return str(beside) if recipe_file != "<string>" and beside.is_file() else source


def _posdict(where: Location) -> PosDict:
    out = PosDict()
    out.where, out.key_where, out.value_where = where, {}, {}
    return out


def _locate(mapping: dict, key: Any, where: Location) -> None:
    if isinstance(mapping, PosDict):
        mapping.key_where[key] = where
        mapping.value_where[key] = where


def _loc(mapping: Any, key: Any = None) -> Location:
    if isinstance(mapping, PosDict):
        return mapping.loc(key)
    return Location()


def _key_loc(mapping: Any, key: Any) -> Location:
    return mapping.key_loc(key) if isinstance(mapping, PosDict) else Location()


def _where(doc: Any, path: tuple) -> Location:
    node, where = doc, _loc(doc)
    for key in path:
        if isinstance(node, dict) and key in node:
            where = _loc(node, key)
            node = node[key]
        else:
            break
    return where


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
