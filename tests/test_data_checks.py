"""Bad data is refused when it is loaded, with the reason: a corpus of broken data sets."""
import io
import pickle

import numpy as np
import pytest

from nas.data import load_dataset
from nas.data_checks import check_images, check_labels
from nas.dsl import SpecError


def _images(n=30, shape=(8, 8), classes=3, dtype=np.float32):
    rng = np.random.default_rng(0)
    return rng.random((n, *shape)).astype(dtype), np.arange(n) % classes


def _npz(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def _x(**kw):
    return _images(**kw)[0]


CORPUS = {
    "nan pixel": (lambda: {"x": np.where(np.arange(30 * 64).reshape(30, 8, 8) == 200, np.nan, _x()),
                           "y": _images()[1]}, "1 pixel value\\(s\\) are NaN or infinite \\(first in image 3\\)"),
    "inf pixel": (lambda: {"x": _x() * np.float32(np.inf), "y": _images()[1]}, "NaN or infinite"),
    "channels-last with 5": (lambda: {"x": _x(shape=(32, 32, 5)), "y": _images()[1]}, "ambiguous image layout"),
    "fewer labels": (lambda: {"x": _x(), "y": _images()[1][:5]}, "30 images but 5 labels"),
    "two samples": (lambda: {"x": _x(n=2), "y": np.array([0, 1])}, "too few samples to split: train 2"),
    "huge labels": (lambda: {"x": _x(), "y": _images()[1] * 10**9}, "label 2000000000 is out of range"),
    "negative labels": (lambda: {"x": _x(), "y": _images()[1] - 1}, "labels must be ≥ 0"),
    "float labels": (lambda: {"x": _x(), "y": _images()[1] + 0.5}, "labels must be a 1-D array of integers"),
    "2-D labels": (lambda: {"x": _x(), "y": _images()[1][:, None]}, "labels must be a 1-D array"),
    "string images": (lambda: {"x": np.array(["a"] * 30), "y": _images()[1]}, "images must be numbers"),
    "bool images": (lambda: {"x": _x() > 0.5, "y": _images()[1]}, "images must be numbers"),
    "5-D images": (lambda: {"x": _x()[:, None, None], "y": _images()[1]}, "images must be N×H×W"),
    "empty images": (lambda: {"x": _x(shape=(0, 0)), "y": _images()[1]}, "empty images"),
}


@pytest.mark.parametrize("name", CORPUS)
def test_bad_npz_is_refused_with_the_reason(name, tmp_path):
    make, fragment = CORPUS[name]
    path = _npz(tmp_path, **make())
    with pytest.raises(SpecError, match=fragment) as err:
        load_dataset("npz", root=path, size=8)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_layouts_that_are_clear_are_read(tmp_path):
    x, y = _images(shape=(8, 8, 3))
    assert check_images(x, "s").shape == (30, 3, 8, 8)  # channels last, C = 3
    assert check_images(_x(shape=(5, 8, 8)), "s").shape == (30, 5, 8, 8)  # channels first, C ≤ H, W
    assert check_images(_x(shape=(8, 8)), "s").shape == (30, 1, 8, 8)
    assert check_labels(np.array([0, 2, 1], dtype=np.uint8), 3, "s").dtype == np.int64
    data = load_dataset("npz", root=_npz(tmp_path, x=x, y=y), size=8)
    assert data.channels == 3 and data.classes == 3


def test_broken_archives(tmp_path):
    pickled = tmp_path / "p.npz"
    np.savez(pickled, x=np.array([{}] * 30, dtype=object), y=np.arange(30))
    bad_zip = tmp_path / "z.npz"
    bad_zip.write_bytes(b"PK\x03\x04" + b"junk" * 10)
    single = tmp_path / "s.npz"
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    single.write_bytes(buffer.getvalue())
    for path, fragment in ((pickled, "Object arrays cannot be loaded"), (bad_zip, "cannot read .npz"),
                           (single, "not an .npz archive")):
        with pytest.raises(SpecError, match=fragment):
            load_dataset("npz", root=path)


@pytest.mark.parametrize("entry, fragment", [
    ({b"data": np.zeros((10, 100), np.uint8), b"labels": list(range(10))}, "N×3072 uint8"),
    ({b"data": "not an array", b"labels": [1] * 10}, "N×3072 uint8"),
    ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [1]}, "10 images but 1 labels"),
    ({b"data": np.zeros((10, 3072), np.uint8), b"labels": [99] * 10}, "label 99 is out of range \\(at most 9\\)"),
    ([1, 2], "not a CIFAR batch"),
])
def test_bad_cifar_batches(entry, fragment, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(entry))
    with pytest.raises(SpecError, match=fragment):
        load_dataset("cifar10", root=tmp_path, size=8)


def test_an_image_bomb_is_refused_before_decoding(tmp_path):
    from hostile_corpus import _image_folder, _png_bomb

    _image_folder(_png_bomb)(tmp_path / "imgs")
    with pytest.raises(SpecError, match="cannot read image|pixels, over the limit"):
        load_dataset("imagefolder", root=tmp_path / "imgs", size=8)


def test_data_too_large_for_the_machine_is_refused_before_it_is_made(monkeypatch):
    monkeypatch.setenv("NAS_MAX_ACTIVATION_MB", "10")
    with pytest.raises(SpecError, match="1797 images of 1×64×64 as float32 need .* over the limit"):
        load_dataset("digits", size=64)
