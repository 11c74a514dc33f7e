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
    recipe.resources: Resources          cpus (total), cpus_per_trial, gpus_per_trial, concurrency, workers
    recipe.ray_address: str | None       recipe.storage: str | None (Optuna storage URL; None = run folder)
    recipe.ray_storage_path: str | None  where Ray Tune writes its experiment (a folder every node reaches, or a
                                         URI Ray supports: s3://, gs://, ...; None = the run folder)
    recipe.max_failures: int             Ray Tune retries of a trial whose worker or node died (0 = record failed)
    recipe.study_name: str | None        the Optuna study in `storage` (None: the recipe's name when `storage`
                                         is given, so processes pointed at one storage share one study)
    recipe.seed: int                     recipe.export: dict | None ({"formats": [...]})
    recipe.retrain: dict | None          {"epochs": int, "inherit": bool}  (shape-checked only here)
    recipe.sweep: dict | None            {"key.path": [values, ...]}: one DNAS search per combination;
                                         `nas.recipe_sweep.sweep_members(recipe)` gives the member recipes
    recipe.doc: PosDict                  the parsed document after `--set` overrides (positions kept)
    recipe.where(*path) -> Location      location of a key path, for located errors
    recipe.as_dict() -> dict             the resolved recipe (defaults filled), written into the run folder

The schema itself (every section's keys, types and ranges) is in `nas.recipe_schema`.
Strategy-specific options are validated by the strategy that owns them: `STRATEGIES` maps each name to
"module:attribute", an object with `OPTIONS: dict[str, Option]` and `max_objectives: int | None` (None =
any number). Unknown options are located errors with a did-you-mean. Any other error is a located one-line
`SpecError` too.
"""
from __future__ import annotations

import importlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from nas.dsl.errors import Location, SpecError
from nas.dsl.parse import PosDict, parse_yaml, read_yaml

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
            "early_stop", "resources", "ray", "storage", "study_name", "seed", "export", "retrain", "sweep")
RAY_KEYS = ("address", "storage_path", "max_failures")
SPACE_KEYS = ("source", "width", "depth", "size", "channels", "classes", "bn", "coefficients")
COEFFICIENT_KEYS = ("phi", "step", "tolerance", "maximum")
DATA_KEYS = ("name", "root", "size", "channels", "val_fraction", "seed")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "warmup_epochs",
              "label_smoothing", "drop_path", "grad_clip", "augment", "flip", "device", "eval_batch_size")
EXPORT_FORMATS = ("py", "yaml", "weights", "torchscript", "onnx")
_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9, "ms": 1.0}
TIME_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


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
    workers: int = 1  # data-parallel workers of a DNAS supernet (Ray Train)


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
    ray_storage_path: str | None = None
    max_failures: int = 0
    study_name: str | None = None

    def where(self, *path: Any) -> Location:
        return _where(self.doc, path)

    def load_space(self, data: Any = None):
        """The space with the recipe's transforms; input size, channels and classes follow `data` unless set."""
        from nas.dsl import load
        from nas.zoo import resolve_source

        source = _space_path(self.space.source, self.file)
        try:
            path = resolve_source(source)
        except SpecError as err:  # an unknown zoo name: the recipe's mistake, located there
            raise SpecError(f"space.source: {err.message}", self.where("space", "source"), err.hint) from None
        if not path.exists():
            raise SpecError(f"space.source: no such file '{source}'", self.where("space", "source"),
                            "a space file (beside the recipe, or a path) or a zoo name, e.g. fbnet")
        space = load(path)
        if not space.choices() and self.strategy.name != "dnas" and not self.space.coefficients:
            raise SpecError(f"space '{space.name}' has no choices: there is nothing to search",
                            self.where("space"), "use a search space (e.g. fbnet, nasnet, mobilenetv3)")
        channels = self.space.channels or (data.channels if data is not None else None)
        size = self.space.size or (data.size if data is not None else self.data.size)
        classes = self.space.classes or (data.classes if data is not None else None)
        space = self.transform(space, channels, size, classes)
        if self.space.bn:  # e.g. TF-ported momentum 0.01 is too slow for the running stats of a short trial
            doc = space.clone_doc()
            doc["bn"] = dict(doc.get("bn") or {}, **self.space.bn)
            space = space.copy_with(doc)
        if self.space.coefficients:
            from nas.scaling import coefficient_grid
            from nas.search.coefficients import CoefficientSpace

            c = self.space.coefficients
            try:
                space = CoefficientSpace(space, coefficient_grid(c["step"], c["tolerance"], c["maximum"]), c["phi"],
                                         source=self.space.source)
            except SpecError as err:  # the space file is fine; asking to scale it is the recipe's mistake
                raise SpecError(f"space.coefficients: {err.message}", self.where("space", "coefficients"),
                                err.hint) from None
        return space

    def transform(self, space, channels: int | None, size: int | None, classes: int | None):
        """The recipe's width and depth multipliers, then the input and the classes: what the searched space
        went through, so that a zoo architecture can be compared with the run's at the same scale."""
        if self.space.width is not None:
            space = space.with_width(self.space.width)
        if self.space.depth is not None:
            space = space.with_depth(self.space.depth)
        space = space.with_input(channels=channels, size=size)
        return space.with_classes(classes) if classes else space

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
        ray = {"address": self.ray_address, "storage_path": self.ray_storage_path,
               "max_failures": self.max_failures or None}
        if any(v is not None for v in ray.values()):
            out["ray"] = {k: v for k, v in ray.items() if v is not None}
        if self.storage:
            out["storage"] = self.storage
        if self.study_name:
            out["study_name"] = self.study_name
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
    from nas.recipe_schema import Validator

    if not isinstance(doc, dict):
        raise SpecError("a recipe must be a mapping", getattr(doc, "where", Location(file)),
                        "start with 'space:' and 'strategy:'")
    for item in overrides:
        apply_override(doc, item)
    return Validator(doc, file).run()


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
    set_key_path(doc, keys, value, where)


def set_key_path(doc: PosDict, keys: list[str], value: Any, where: Location) -> None:
    """Set `doc[k0][k1]...[kn] = value` (parents made), recording `where` as the key's location: what `--set`
    does, and what a `sweep:` member does to the recipe it copies."""
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


# -- shared pieces -------------------------------------------------------------------------------------------
def strategy_info(name: str, where: Location | None = None):
    """The object behind STRATEGIES[name] (its OPTIONS and max_objectives), imported on demand."""
    module, _, attr = STRATEGIES[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        raise SpecError(f"strategy '{name}' is not available in this installation", where,
                        f"{STRATEGIES[name]} could not be imported") from None


def parse_quantity(text: Any, where: Location, what: str) -> float:
    """20M, 1.5G, 300k, 5ms, 1e6 → a float."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _SUFFIX:
        raise SpecError(f"{what} {text!r} is not a quantity", where, "a number with an optional K/M/G suffix, e.g. 20M")
    return float(match.group(1)) * _SUFFIX[match.group(2).lower()]


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

