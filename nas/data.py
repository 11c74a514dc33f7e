"""Datasets as in-memory tensors with stratified, seeded train/val/test splits.

- `digits`: scikit-learn's bundled 8×8 handwritten digits (1,797 real images) — the default, no network.
- `cifar10`, `cifar100`: the official python archives, downloaded with an MD5 check or read from `root`.
- `imagefolder`: a folder per class (Pillow). `npz`: arrays `x` and `y`.

Images are float32 N×C×H×W, resized to `size` and normalized with the training split's per-channel mean
and std. Batches come from index permutations and tensor slicing; augmentation works on whole batches.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.data_checks import check_bytes, check_cifar_batch, check_images, check_labels, check_memory, check_splits
from nas.dsl.errors import SpecError, did_you_mean
from nas.ops.preprocess import RESIZE, fit_images, normalize

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder", "npz")
CIFAR = {
    "cifar10": {"url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                "md5": "c58f30108f718f92721af3b95e74349a", "folder": "cifar-10-batches-py",
                "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"], "label": b"labels",
                "classes": 10, "names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                         "ship", "truck"]},
    "cifar100": {"url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 "md5": "eb9058c3a382ffc7106e4002c42a8d85", "folder": "cifar-100-python",
                 "train": ["train"], "test": ["test"], "label": b"fine_labels", "classes": 100},
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_IMAGE_PIXELS = 50_000_000  # per image file; a larger one is a decompression bomb more often than a photo


@dataclass
class Split:
    x: torch.Tensor  # float32 N×C×H×W, normalized
    y: torch.Tensor  # int64 N

    def __len__(self) -> int:  # samples, not fields
        return len(self.y)

    def __iter__(self):  # unpacks as the (x, y) pair: `x, y = data.train`, `evaluate(model, *data.test)`
        return iter((self.x, self.y))


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    classes: int
    channels: int
    size: int
    # What a model trained on it expects (size, channels, resize, mean, std, class names where known): the
    # `preprocess:` section of a trained architecture, and model.py's constants.
    preprocess: dict = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{self.name}: {self.channels}×{self.size}×{self.size}, {self.classes} classes, "
                f"train {len(self.train)} / val {len(self.val)} / test {len(self.test)}")


def cache_dir() -> Path:
    return Path(os.environ.get("NAS_DATA", Path.home() / ".cache" / "nas" / "datasets"))


# -- loading -------------------------------------------------------------------------------------------------
def load_dataset(name: str = "digits", size: int = 32, root: str | os.PathLike | None = None,
                 val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0, channels: int | None = None,
                 download: bool = True, url: str | None = None, md5: str | None = None,
                 preprocess: dict | None = None) -> Dataset:
    """Load a dataset by name. `test_fraction` applies where the source has no official test split.

    For CIFAR, `url` and `md5` replace the official archive's address and checksum (a mirror).
    `preprocess` (a trained architecture's `preprocess:` record) prepares the images as that model was trained:
    its size, channels, mean and std instead of `size`, `channels` and this data's own statistics.
    """
    if name not in DATASETS:
        raise SpecError(f"unknown dataset '{name}'", "--data", did_you_mean(name, DATASETS))
    if not isinstance(size, int) or size < 1:
        raise SpecError(f"image size must be a positive integer, got {size!r}", "--size")
    for what, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise SpecError(f"{what} must be in [0, 1), got {value}")
    source = str(root) if root is not None and name != "digits" else name
    if preprocess is not None:  # read at the trained model's input size and channels
        size, channels = preprocess["size"], preprocess["channels"]
    names = None  # class names, where the source has them
    if name == "digits":
        x, y, classes = _digits()
        names = [str(i) for i in range(classes)]
        parts = _split(x, y, val_fraction, test_fraction, seed)
    elif name in CIFAR:
        (x, y), (x_test, y_test), classes = _cifar(name, root, download, url, md5)
        names = CIFAR[name].get("names")
        train, val = _stratified(x, y, val_fraction, seed)
        parts = (train, val, (x_test, y_test))
    elif name == "imagefolder":
        x, y, names = _image_folder(root, size, channels or 3)
        classes = len(names)
        parts = _split(x, y, val_fraction, test_fraction, seed)
    else:
        x, y, classes = _npz(root)
        parts = _split(x, y, val_fraction, test_fraction, seed)
    check_splits(parts, source)
    check_memory(sum(len(p[1]) for p in parts), channels or parts[0][0].shape[1], size, source)
    data = _finish(name, parts, classes, size, channels, preprocess)
    if names and "classes" not in data.preprocess:
        data.preprocess["classes"] = list(names)
    return data


def _finish(name: str, parts, classes: int, size: int, channels: int | None,
            preprocess: dict | None = None) -> Dataset:
    """Resize, match channels and normalize every split with `nas.ops.preprocess` — the code that exported
    models ship — using the training split's statistics, or those of `preprocess` (a trained model's record)."""
    have = np.asarray(parts[0][0]).shape[1]
    want = channels or have
    if want != have and have != 1:
        raise SpecError(f"{name} has {have} channels; cannot turn them into {want}", "--channels")
    tensors = [(fit_images(np.asarray(x), size, want), torch.as_tensor(np.asarray(y), dtype=torch.int64))
               for x, y in parts]
    if preprocess is None:
        preprocess = {"size": size, "channels": want, "resize": RESIZE,
                      "mean": _rounded(tensors[0][0].mean(dim=(0, 2, 3))),
                      "std": _rounded(tensors[0][0].std(dim=(0, 2, 3)).clamp_min(1e-6))}
    splits = [Split(normalize(x, preprocess["mean"], preprocess["std"]), y) for x, y in tensors]
    return Dataset(name, splits[0], splits[1], splits[2], classes, want, size, dict(preprocess))


def _rounded(values: torch.Tensor) -> list[float]:
    """Statistics as recorded (6 significant digits, readable in arch.yaml); training uses these same values."""
    return [float(f"{v:.6g}") for v in values.tolist()]


def _stratified(x, y, fraction: float, seed: int):
    """Split off `fraction` of the samples, keeping class proportions; deterministic for a seed."""
    y = np.asarray(y)
    if fraction <= 0:
        return (x, y), (x[:0], y[:0])
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rng.shuffle(members)
        take = int(round(len(members) * fraction))
        held.extend(members[:take])
    held = np.sort(np.array(held, dtype=np.int64))
    keep = np.setdiff1d(np.arange(len(y)), held)
    return (x[keep], y[keep]), (x[held], y[held])


def _split(x, y, val_fraction: float, test_fraction: float, seed: int):
    rest, test = _stratified(x, y, test_fraction, seed)
    share = val_fraction / (1 - test_fraction) if test_fraction < 1 else 0
    train, val = _stratified(rest[0], rest[1], share, seed + 1)
    return train, val, test


def _digits():
    """The 1,797 images of scikit-learn's bundled digits file, read directly: importing scikit-learn costs about
    1.5 s in every process that loads the data (each CLI call, each Ray worker), and the file is all we need."""
    path = _digits_file()
    if path is None:  # a scikit-learn that keeps the file elsewhere: its own loader reads the same data
        from sklearn.datasets import load_digits

        digits = load_digits()
        images, target = digits.images, digits.target
    else:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)  # a row: 64 pixels (0…16), then the label
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1]
    x = (images.astype(np.float32) / 16.0)[:, None]  # N×1×8×8 in [0, 1]
    return x, target.astype(np.int64), 10


def _digits_file() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


# -- CIFAR ---------------------------------------------------------------------------------------------------
class _ArraysOnly(pickle.Unpickler):
    """The CIFAR archives are pickles: allow the few numpy constructors they need and nothing else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data archive")


def _unpickle(data: bytes, source: str) -> dict:
    try:
        return _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError) as err:  # what a corrupt or hostile pickle raises; anything else is our bug
        raise SpecError(f"cannot read {source}: {err}", source, "re-download the archive") from None


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _archive_path(name: str, root: str | os.PathLike | None) -> Path:
    base = Path(root) if root else cache_dir()
    if base.is_file() or base.name.endswith((".tar.gz", ".tgz")):  # the archive itself, present or to be fetched
        return base
    return base / Path(CIFAR[name]["url"]).name


def _download(url: str, target: Path, md5: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise SpecError(f"cannot download {url} ({getattr(err, 'reason', err)})", str(target),
                        f"offline? put the archive at {target}") from None
    if md5sum(partial) != md5:
        partial.unlink(missing_ok=True)
        raise SpecError(f"checksum mismatch for {url}", str(target), "the download is corrupt; try again")
    os.replace(partial, target)


def _cifar(name: str, root, download: bool, url: str | None, md5: str | None):
    info = dict(CIFAR[name], **({"md5": md5} if md5 else {}))
    base = Path(root) if root else None
    if base is not None and (base / info["folder"]).is_dir():
        read = lambda member: (base / info["folder"] / member).read_bytes()  # noqa: E731 - extracted folder
        return _cifar_arrays(info, read, str(base / info["folder"]))
    archive = _archive_path(name, root)
    if not archive.is_file():
        if not download:
            raise SpecError(f"{name} archive not found", str(archive), f"put {Path(info['url']).name} there")
        _download(url or info["url"], archive, info["md5"])
    elif md5sum(archive) != info["md5"]:
        raise SpecError(f"checksum mismatch: {archive} is not the official {name} archive", str(archive),
                        "delete it and download again")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}

            def read(member: str) -> bytes:
                key = f"{info['folder']}/{member}"
                if key not in members:
                    raise SpecError(f"{archive} has no {key}", str(archive), "is it the right archive?")
                return tar.extractfile(members[key]).read()

            return _cifar_arrays(info, read, str(archive))
    except tarfile.TarError as err:
        raise SpecError(f"cannot open {archive}: {err}", str(archive)) from None


def _cifar_arrays(info: dict, read, source: str):
    def batch(members):
        xs, ys = [], []
        for member in members:
            entry = _unpickle(read(member), f"{source}/{member}")
            x, y = check_cifar_batch(entry, info["label"], info["classes"], f"{source}/{member}")
            xs.append(x)
            ys.append(y)
        return np.concatenate(xs), np.concatenate(ys)

    return batch(info["train"]), batch(info["test"]), info["classes"]


# -- users' own data -----------------------------------------------------------------------------------------
def _image_folder(root, size: int, channels: int):
    if root is None:
        raise SpecError("imagefolder needs a folder", "--data-root", "one sub-folder of images per class")
    base = Path(root)
    if not base.is_dir():
        raise SpecError("no such folder", str(base), "one sub-folder of images per class")
    class_dirs = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise SpecError("no class folders found", str(base), "put each class's images in its own sub-folder")
    from PIL import Image, UnidentifiedImageError

    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise SpecError(f"imagefolder reads 1 or 3 channels, not {channels}", "--channels")
    xs, ys = [], []
    for label, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SpecError(f"class folder '{folder.name}' has no images", str(folder),
                            f"supported: {', '.join(IMAGE_SUFFIXES)}")
        for path in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(path) as image:
                        if image.width * image.height > MAX_IMAGE_PIXELS:  # checked before decoding
                            raise SpecError(f"image is {image.width}×{image.height} pixels, over the limit of "
                                            f"{MAX_IMAGE_PIXELS:,}", str(path), "shrink it first")
                        image = image.convert(mode).resize((size, size), Image.BILINEAR)
                        array = np.asarray(image, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, Image.DecompressionBombError,
                    Image.DecompressionBombWarning) as err:
                raise SpecError(f"cannot read image: {err}", str(path)) from None
            xs.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
            ys.append(label)
    return np.stack(xs), np.array(ys, dtype=np.int64), [folder.name for folder in class_dirs]


def _npz(root):
    if root is None:
        raise SpecError("npz needs a file", "--data-root", "an .npz with arrays x (images) and y (labels)")
    path = Path(root)
    if not path.is_file():  # also a pipe or a device, which np.load would read forever
        problem = "not a regular file" if path.exists() else "no such file"
        raise SpecError(problem, str(path), "an .npz with arrays x (images) and y (labels)")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):  # a lone .npy array
            raise SpecError("not an .npz archive (a single array?)", str(path), "save with np.savez(x=..., y=...)")
        with archive:
            missing = [k for k in ("x", "y") if k not in archive.files]
            if missing:
                raise SpecError(f"missing array '{missing[0]}'", str(path), f"found: {', '.join(archive.files)}")
            unpacked = sum(archive.zip.getinfo(f"{k}.npy").file_size for k in ("x", "y"))
            check_bytes(unpacked, "the arrays", str(path), "a smaller data set")  # a zip bomb, before reading
            x, y = archive["x"], archive["y"]
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise SpecError(f"cannot read .npz: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                        str(path), "an .npz with arrays x (images) and y (labels), no pickled objects") from None
    x = check_images(x, str(path))
    y = check_labels(y, len(x), str(path))
    return x, y, int(y.max()) + 1 if len(y) else 0


# -- batches -------------------------------------------------------------------------------------------------
def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, done for the whole batch at once."""
    n, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]  # n×1×h×1
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]  # n×1×1×w
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, chans, rows, cols]
    if flip:
        mirror = torch.rand(n, generator=generator) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out


def batches(split: Split, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None,
            augment: bool = False, flip: bool = True):
    """Yield (x, y) batches covering every sample once; shuffled and augmented with `generator`."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        index = order[start:start + batch_size]
        x = split.x[index]
        if augment:
            x = augment_batch(x, generator, flip=flip)
        yield x, split.y[index]
