"""Pure-data transforms of a space or architecture: width, depth, input size, classes.

Each returns a new object of the same kind (a Space stays a Space, an Arch an Arch) and re-validates it, so
a transform that makes shapes impossible raises the usual located SpecError.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from nas.dsl.document import Choice, option_key
from nas.dsl.errors import Location, SpecError
from nas.dsl.meta import check_preprocess
from nas.dsl.ops import OPS
from nas.dsl.rounding import round_channels, round_repeats

if TYPE_CHECKING:  # Space sits above this module and delegates to it
    from nas.dsl.nodes import Space



def _copy(space: Space) -> dict:
    return copy.deepcopy(space.doc)


def _derived(space: Space, doc: dict, step: str) -> dict:
    """`doc` changed by `step` (e.g. "width x0.25"): its base's published figures and description no longer
    hold, so `reference` is dropped, `description` rewritten, and `derived_from` names the base and the steps."""
    base = dict(doc.get("derived_from") or {"name": space.name})
    base["transforms"] = [*base.get("transforms", []), step]
    doc["derived_from"] = base
    doc.pop("reference", None)
    doc["description"] = f"{base['name']}, {', '.join(base['transforms'])}"
    return doc


def _map_value(value: Any, fn: Callable[[int], int]) -> Any:
    """Apply fn to an int, or to every option of a choice of ints (keys follow the new values)."""
    if isinstance(value, Choice):
        values = {}
        for v in value.values.values():
            new = fn(v)
            values.setdefault(option_key(new), new)
        return Choice(value.name, values, value.where, None)
    return fn(value) if isinstance(value, int) and not isinstance(value, bool) else value


def with_classes(space: Space, classes: int) -> Space:
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise SpecError(f"classes must be a positive integer, got {classes!r}")
    doc = _copy(space)
    if classes != doc["classes"]:
        if "preprocess" in doc:
            doc["preprocess"].pop("classes", None)  # the recorded names were those of other classes
        _derived(space, doc, f"{classes} classes")
    doc["classes"] = classes
    return space.copy_with(doc)


def with_input(space: Space, channels: int | None = None, size: int | None = None) -> Space:
    doc = _copy(space)
    before = dict(doc["input"])
    for key, value in (("channels", channels), ("size", size)):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"input {key} must be a positive integer, got {value!r}")
        doc["input"][key] = value
    if doc["input"] != before:
        _derived(space, doc, f"input {doc['input']['channels']}x{doc['input']['size']}x{doc['input']['size']}")
    record = doc.get("preprocess")
    if record is not None:
        if record["channels"] != doc["input"]["channels"]:
            del doc["preprocess"]  # statistics of other channels say nothing about these
        else:
            record["size"] = doc["input"]["size"]  # images are resized to whatever the network now takes
    return space.copy_with(doc)


def with_preprocess(space: Space, record: dict | None) -> Space:
    """Record what the network expects of its input (`nas.dsl.meta`), or drop the record (None)."""
    doc = _copy(space)
    doc.pop("preprocess", None)
    if record is not None:
        doc["preprocess"] = check_preprocess(record, Location("preprocess"))
    return space.copy_with(doc)


def with_width(space: Space, multiplier: float, divisor: int = 8) -> Space:
    """Scale every free width (stem, stages, head convs; F of a cell body) by `multiplier`, rounded.

    A layer's `width:` says how the multiplier applies to it (`nas.dsl.ops.WIDTH_RULES`): `grow` layers only
    widen (MobileNetV2's last conv stays at 1280 below 1.0), `fixed` ones keep their width."""
    if not multiplier > 0:
        raise SpecError(f"width multiplier must be > 0, got {multiplier!r}")
    doc = _copy(space)

    def scale_for(layer: dict):
        rule = layer.get("width", "scale")
        if rule == "fixed" or (rule == "grow" and multiplier <= 1):
            return lambda c: c
        return lambda c: round_channels(c * multiplier, divisor)

    for section in ("stem", "head"):
        for spec in doc[section]:
            if "c" in spec and spec.get("op") in OPS and OPS[spec["op"]].width_scaled:
                spec["c"] = _map_value(spec["c"], scale_for(spec))
    for row in doc.get("stages", []):
        row["c"] = _map_value(row["c"], scale_for(row))
    if "body" in doc:
        doc["body"] = dict(doc["body"], F=round_channels(doc["body"]["F"] * multiplier, divisor))
    if multiplier != 1:
        _derived(space, doc, f"width x{multiplier:g}")
    return space.copy_with(doc)


def with_depth(space: Space, multiplier: float) -> Space:
    """Scale every stage's repeats by `multiplier` (rounded up); cell networks scale N of the body."""
    if not multiplier > 0:
        raise SpecError(f"depth multiplier must be > 0, got {multiplier!r}")
    doc = _copy(space)
    grow = lambda n: max(1, round_repeats(n, multiplier))  # noqa: E731
    for row in doc.get("stages", []):
        if "layers" in row:
            layers = row["layers"]
            target = grow(len(layers))
            if isinstance(row.get("n"), Choice):
                row["n"] = _map_value(row["n"], lambda n: min(grow(n), target))
            # Deeper: repeat the last layer (a choice is copied under a new name); shallower: keep the first.
            extra = [_rename(layers[-1], f".layers.{len(layers) - 1}", f".layers.{j}")
                     for j in range(len(layers), target)]
            row["layers"] = layers[:target] + extra
        else:
            row["n"] = _map_value(row.get("n", 1), grow)
    if "body" in doc:
        body = dict(doc["body"])
        body["N"] = grow(body["N"]) if isinstance(body.get("N"), int) else body.get("N")
        doc["body"] = body
    if multiplier != 1:
        _derived(space, doc, f"depth x{multiplier:g}")
    return space.copy_with(doc)


def _rename(node: Any, old: str, new: str) -> Any:
    node = copy.deepcopy(node)

    def visit(value: Any) -> Any:
        if isinstance(value, Choice):  # frozen: a renamed copy
            return dataclasses.replace(value, name=value.name.replace(old, new, 1))
        if isinstance(value, dict):
            for k, v in value.items():
                value[k] = visit(v)
        elif isinstance(value, list):
            value[:] = [visit(v) for v in value]
        return value

    return visit(node)


def with_dropout(space: Space, rate: float) -> Space:
    """Set the dropout of every classifier in the head (EfficientNet's scaled models raise it with size)."""
    if not 0 <= rate < 1:
        raise SpecError(f"dropout must be in [0, 1), got {rate!r}")
    doc = _copy(space)
    for spec in doc["head"]:
        if spec.get("op") == "classifier":
            spec["dropout"] = rate
    return space.copy_with(doc)


def with_name(space: Space, name: str) -> Space:
    if not isinstance(name, str) or not name.strip():
        raise SpecError("a name must be a non-empty string")
    doc = _copy(space)
    doc["name"] = name
    return space.copy_with(doc)
