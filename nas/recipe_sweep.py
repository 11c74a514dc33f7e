"""`sweep:` in a recipe: the member recipes of a DNAS family (one search per value; see nas.search.family).

    members = sweep_members(recipe)      # [SweepMember(name="alpha=0.2", values={"alpha": 0.2}, recipe=...)]

Each member is the recipe without `sweep:`, each key set to one value exactly as `--set` sets it
(`nas.recipe.set_key_path`), validated like any recipe; several keys give every combination. The recipe
schema calls `sweep_members` on load, so a bad sweep is a located one-line error before anything runs.
"""
from __future__ import annotations

import copy
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from nas.dsl.errors import Location, SpecError, did_you_mean
from nas.recipe import TOP_KEYS, Recipe, _key_loc, _loc, _plain, set_key_path, strategy_info

SWEEP_SHARED = ("name", "description", "sweep", "resources", "ray", "storage")  # one value for the whole family


@dataclass
class SweepMember:
    """One search of a `sweep:` family: its values and the recipe they make."""

    name: str  # its folder under members/, e.g. "alpha=0.2" or "alpha=0.5,strategy.mode=single_path"
    values: dict  # sweep key (as written) → value
    recipe: Recipe


def sweep_members(recipe: Recipe) -> list[SweepMember]:
    """The member recipes of `recipe.sweep` (see the module docstring). A key without a dot that is an option
    of the strategy is short for `strategy.KEY` (`alpha` = `strategy.alpha`)."""
    from nas.recipe_schema import Validator

    if not recipe.sweep:
        return []
    if recipe.strategy.name != "dnas":
        raise SpecError(f"sweep runs one DNAS search per value; strategy '{recipe.strategy.name}' is multi-trial",
                        recipe.where("sweep"), "a multi-trial search already trains many architectures as Ray Tune "
                        "trials: run `nas search --set KEY=VALUE` once per value")
    spots = sweep_spots(recipe.doc["sweep"])
    paths = {key: _sweep_path(recipe, key, where) for key, (_, where) in spots.items()}
    members, seen = [], {}
    for combo in itertools.product(*(range(len(values)) for values, _ in spots.values())):
        doc = copy.deepcopy(recipe.doc)
        del doc["sweep"]
        values = {}
        for (key, (items, where)), i in zip(spots.items(), combo):
            set_key_path(doc, paths[key], copy.deepcopy(items[i]), _item_loc(items, i, where))
            values[key] = _plain(items[i])
        name = ",".join(f"{key}={sweep_label(value)}" for key, value in values.items())
        try:
            member = Validator(doc, recipe.file).run()
        except SpecError as err:
            raise SpecError(f"sweep member {name}: {err.message}", err.where, err.hint) from None
        if member.strategy.name != "dnas":
            raise SpecError(f"sweep member {name} is not a DNAS search", recipe.where("sweep"),
                            "a sweep varies a DNAS recipe; leave strategy.name out of it")
        folder = re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)[:120]
        if folder in seen:
            raise SpecError(f"sweep members {seen[folder]} and {name} would share the folder members/{folder}",
                            recipe.where("sweep"), "give each sweep key distinct values")
        seen[folder] = name
        members.append(SweepMember(folder, values, member))
    return members


def sweep_spots(sweep: Any) -> dict[str, tuple[list, Location]]:
    """`sweep:` flattened to key path → (values, location): `{strategy: {alpha: [..]}}` (what
    `--set sweep.strategy.alpha=[..]` writes) is the same as `{strategy.alpha: [..]}`."""
    out: dict[str, tuple[list, Location]] = {}

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if not isinstance(key, str) or not all(path.split(".")):
                raise SpecError(f"sweep key '{path}' must be a dotted key path", _key_loc(node, key),
                                "e.g. strategy.alpha: [0.0, 0.2, 0.5]")
            if isinstance(value, dict) and value:
                walk(value, path + ".")
            elif not isinstance(value, list) or not value:
                raise SpecError(f"sweep '{path}' must be a non-empty list of values", _loc(node, key),
                                f"e.g. {path}: [0.1, 0.2]")
            elif path in out:
                raise SpecError(f"sweep key '{path}' is given twice", _key_loc(node, key))
            elif len({json.dumps(_plain(v), sort_keys=True) for v in value}) < len(value):
                raise SpecError(f"sweep '{path}' lists a value twice", _loc(node, key),
                                "each value makes one member of the family")
            else:
                out[path] = (value, _loc(node, key))

    if not isinstance(sweep, dict) or not sweep:
        raise SpecError("sweep must be a mapping of key paths to lists of values", getattr(sweep, "where", None),
                        "e.g. sweep: {strategy.alpha: [0.0, 0.2, 0.5]}")
    walk(sweep, "")
    return out


def _sweep_path(recipe: Recipe, key: str, where: Location) -> list[str]:
    keys = key.split(".")
    options = strategy_info(recipe.strategy.name).OPTIONS
    if len(keys) == 1 and key not in TOP_KEYS:
        if key in options:
            return ["strategy", key]
        raise SpecError(f"unknown sweep key '{key}'", where,
                        did_you_mean(key, [*TOP_KEYS, *options]) or "a recipe key path, e.g. strategy.alpha")
    if keys == ["strategy", "name"]:
        raise SpecError("strategy.name cannot be swept", where, "a sweep varies one DNAS recipe")
    if keys[0] in SWEEP_SHARED:
        raise SpecError(f"'{keys[0]}' cannot be swept: the whole family shares it", where,
                        "sweep strategy, space, data, train or retrain keys, or the seed")
    return keys


def _item_loc(items: list, i: int, where: Location) -> Location:
    return items.loc(i) if hasattr(items, "loc") else where


def sweep_label(value: Any) -> str:
    """A swept value as its member's name shows it (0.0, true, single_path, [1,2])."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
