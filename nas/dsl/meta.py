"""Sections of a document that describe a network without changing what is built.

`preprocess:` is what a trained network expects of its input — written by `nas train`, carried by `nas export`
into arch.yaml and model.py:

    preprocess:
      size: 32                      # input resolution (the network's input.size)
      channels: 1
      resize: bilinear-antialias    # how other sizes are brought to `size`
      mean: [0.301]                 # per channel, of the training split after resizing, images in [0, 1]
      std: [0.412]
      classes: ['0', '1', ...]      # class names, where the data set has them

`derived_from:` names what a transform (`nas scale`, `with_width`, ...) started from, e.g.
`{name: mobilenetv2, transforms: [width 0.25]}`.
"""
from __future__ import annotations

import math
from typing import Any

from nas.dsl.errors import Location, SpecError, did_you_mean

RESIZE_METHODS = ("bilinear-antialias",)
PREPROCESS_KEYS = ("size", "channels", "resize", "mean", "std", "classes")


def check_preprocess(section: Any, where: Location) -> dict:
    """A valid `preprocess:` record as a plain dict, or a located SpecError."""
    if not isinstance(section, dict):
        raise SpecError("'preprocess' must be a mapping", where, f"keys: {', '.join(PREPROCESS_KEYS)}")

    def loc(key: str) -> Location:
        return section.loc(key) if hasattr(section, "loc") and key in section else where

    for key in section:
        if key not in PREPROCESS_KEYS:
            raise SpecError(f"unknown preprocess key '{key}'", loc(key), did_you_mean(str(key), PREPROCESS_KEYS))
    missing = [key for key in ("size", "channels", "mean", "std") if key not in section]
    if missing:
        raise SpecError(f"preprocess needs '{missing[0]}'", where, "nas train writes the whole record")
    out: dict[str, Any] = {}
    for key in ("size", "channels"):
        value = section[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"preprocess.{key} must be a positive integer, got {value!r}", loc(key))
        out[key] = value
    out["resize"] = section.get("resize", RESIZE_METHODS[0])
    if out["resize"] not in RESIZE_METHODS:
        raise SpecError(f"unknown resize method {out['resize']!r}", loc("resize"),
                        did_you_mean(str(out["resize"]), RESIZE_METHODS))
    for key in ("mean", "std"):
        values = section[key]
        if (not isinstance(values, list) or len(values) != out["channels"]
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values)
                or (key == "std" and any(v <= 0 for v in values))):
            raise SpecError(f"preprocess.{key} must be {out['channels']} finite number(s)"
                            f"{' > 0' if key == 'std' else ''}, got {values!r}", loc(key))
        out[key] = [float(v) for v in values]
    if "classes" in section:
        names = section["classes"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise SpecError("preprocess.classes must be a list of class names", loc("classes"))
        out["classes"] = list(names)
    return out
