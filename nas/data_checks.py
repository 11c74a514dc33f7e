"""Data is validated once, when it is loaded, so bad data is refused before training — with the reason.

Images: a numeric array (no objects, no strings), every value finite, an unambiguous layout (N×H×W,
N×C×H×W with C ≤ H, W, or channels-last N×H×W×C with C = 1, 3 or 4), non-empty images. Labels: 1-D
integers, one per image, from 0 to at most MAX_CLASSES - 1. Splits: train and test are not empty.
Memory: the images, as float32 at the requested size, must fit the machine's budget.
"""
from __future__ import annotations

import numpy as np

from nas.dsl.errors import SpecError

MAX_CLASSES = 100_000  # ImageNet-21k has 21,841; a label of 10^9 is a bug, not a class
CHANNELS_LAST = (1, 3, 4)


def check_images(x, source: str) -> np.ndarray:
    """Images as N×C×H×W (uint8 or float32), or a SpecError that says what is wrong with them."""
    if not isinstance(x, np.ndarray):
        raise SpecError(f"images must be an array, not {type(x).__name__}", source)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)) or x.dtype == np.bool_:
        raise SpecError(f"images must be numbers, got an array of {x.dtype}", source,
                        "store pixel values as uint8 or float")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        n, a, h, w = x.shape
        if w in CHANNELS_LAST and a not in CHANNELS_LAST:
            x = x.transpose(0, 3, 1, 2)  # N×H×W×C
        elif a > min(h, w):
            raise SpecError(f"ambiguous image layout {x.shape}", source,
                            "give N×C×H×W, or channels-last N×H×W×C with 1, 3 or 4 channels")
    else:
        raise SpecError(f"images must be N×H×W, N×H×W×C or N×C×H×W, got shape {x.shape}", source)
    if min(x.shape[1:]) < 1:
        raise SpecError(f"empty images: shape {x.shape}", source)
    if np.issubdtype(x.dtype, np.floating):
        bad = ~np.isfinite(x)
        if bad.any():
            first = np.argwhere(bad)[0]
            raise SpecError(f"{int(bad.sum())} pixel value(s) are NaN or infinite (first in image {first[0]})",
                            source, "clean the data: one NaN would poison the normalization of every split")
    elif x.dtype != np.uint8:
        x = x.astype(np.float32)
    return np.ascontiguousarray(x)


def check_labels(y, images: int, source: str, classes: int | None = None) -> np.ndarray:
    """Integer labels, one per image, in range; returns them as int64."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise SpecError(f"labels must be a 1-D array of integers, got {y.dtype} of shape {y.shape}", source)
    if len(y) != images:
        raise SpecError(f"{images} images but {len(y)} labels", source, "there must be one label per image")
    if len(y) and y.min() < 0:
        raise SpecError(f"labels must be ≥ 0, found {int(y.min())}", source)
    limit = classes if classes is not None else MAX_CLASSES
    if len(y) and y.max() >= limit:
        raise SpecError(f"label {int(y.max())} is out of range (at most {limit - 1})", source,
                        "labels are class indices 0…classes-1")
    return y.astype(np.int64)


def check_splits(parts, source: str) -> None:
    """The train and test splits hold samples (a small data set may leave validation empty: its metrics are null)."""
    names = ("train", "val", "test")
    sizes = [len(y) for _, y in parts]
    for name, size in zip(names, sizes):
        if size == 0 and name != "val":
            shown = " / ".join(f"{n} {s}" for n, s in zip(names, sizes))
            raise SpecError(f"too few samples to split: {shown}", source,
                            "every split needs at least one image (add data, a few per class)")


def check_memory(images: int, channels: int, size: int, source: str) -> None:
    """The images as float32 at `size` must fit the machine's budget (nas.budget), before they are made."""
    check_bytes(4 * images * channels * size * size, f"{images} images of {channels}×{size}×{size} as float32",
                source, "use a smaller --size or fewer --channels")


def check_bytes(need: int, what: str, source: str, hint: str) -> None:
    from nas.budget import limits

    limit = limits()[1]
    if need > limit:
        raise SpecError(f"{what} need {need / 2**30:.1f} GB, over the limit of {limit / 2**30:.1f} GB", source, hint)


def check_cifar_batch(entry, label_key: bytes, classes: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """One unpickled CIFAR batch: a dict of N×3072 uint8 images and N labels below `classes`."""
    if not isinstance(entry, dict) or b"data" not in entry or label_key not in entry:
        raise SpecError(f"not a CIFAR batch (expected a dict with b'data' and {label_key!r})", source,
                        "re-download the archive")
    data = entry[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise SpecError(f"CIFAR images must be N×3072 uint8, got {type(data).__name__} {shape}", source,
                        "re-download the archive")
    labels = entry[label_key]
    if not isinstance(labels, (list, np.ndarray)):
        raise SpecError(f"CIFAR labels must be a list, got {type(labels).__name__}", source)
    y = check_labels(np.asarray(labels), len(data), source, classes)
    return data.reshape(-1, 3, 32, 32), y
