"""Datasets: the embedded digits, CIFAR archives in the official format, image folders, .npz; batches."""
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import batches, load_dataset
from nas.dsl import SpecError


def test_digits_default_is_real_stratified_and_seeded():
    data = load_dataset("digits")
    assert (data.channels, data.size, data.classes) == (1, 32, 10)
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert abs(data.train.x.mean().item()) < 1e-4 and abs(data.train.x.std().item() - 1) < 1e-3
    for split in (data.train, data.val, data.test):  # every class in every split, in proportion
        counts = torch.bincount(split.y, minlength=10).float()
        assert counts.min() > 0 and counts.max() / counts.min() < 1.3
    again = load_dataset("digits")
    assert torch.equal(data.test.y, again.test.y) and torch.equal(data.train.x, again.train.x)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(data.test.y, other.test.y)
    rgb = load_dataset("digits", size=16, channels=3)
    assert rgb.train.x.shape[1:] == (3, 16, 16) and torch.equal(rgb.train.x[:, 0], rgb.train.x[:, 2])
    x, y = data.train  # a split unpacks as its (x, y) pair
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and len(x) == len(y) == len(data.train)


@pytest.mark.slow  # imports scikit-learn (a second)
def test_digits_read_directly_equal_scikit_learns_loader(monkeypatch):
    """The file is read without importing scikit-learn (seconds per process); both roads give the same arrays."""
    from sklearn.datasets import load_digits

    import nas.data

    digits = load_digits()
    x, y, classes = nas.data._digits()
    assert nas.data._digits_file() is not None and classes == 10
    assert np.array_equal(x, (digits.images.astype(np.float32) / 16.0)[:, None]) and x.shape == (1797, 1, 8, 8)
    assert np.array_equal(y, digits.target) and y.dtype == np.int64
    monkeypatch.setattr(nas.data, "_digits_file", lambda: None)  # a scikit-learn that moved its file
    fx, fy, _ = nas.data._digits()
    assert np.array_equal(fx, x) and np.array_equal(fy, y)


def _cifar_archive(tmp_path: Path, name: str = "cifar10", per_batch: int = 6) -> tuple[Path, int]:
    """A small archive in the official python format: a folder of pickled dicts with uint8 rows."""
    rng = np.random.default_rng(0)
    folder = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
    members = ([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]) if name == "cifar10" else ["train", "test"]
    label_key, classes = (b"labels", 10) if name == "cifar10" else (b"fine_labels", 100)
    path = tmp_path / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            n = per_batch if name == "cifar10" else per_batch * 5
            entry = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                     label_key: [int(v) for v in rng.integers(0, classes, n)], b"batch_label": b"x"}
            blob = pickle.dumps(entry, protocol=2)
            info = tarfile.TarInfo(f"{folder}/{member}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path, classes


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_archive_in_the_official_format(tmp_path, name):
    archive, classes = _cifar_archive(tmp_path, name)
    data = load_dataset(name, root=archive, md5=_md5(archive), val_fraction=0.2)
    assert data.classes == classes and data.channels == 3 and data.size == 32
    assert len(data.train) + len(data.val) == 30 and len(data.test) == (6 if name == "cifar10" else 30)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "extracted", filter="data")
    folder = load_dataset(name, root=tmp_path / "extracted", val_fraction=0.2)
    assert torch.equal(folder.test.x, data.test.x)


def test_cifar_checksum_mismatch_is_an_error(tmp_path):
    archive, _ = _cifar_archive(tmp_path)
    with pytest.raises(SpecError, match="checksum mismatch"):
        load_dataset("cifar10", root=archive)  # not the official archive's MD5


def test_cifar_offline_error_names_where_to_put_the_archive(tmp_path):
    with pytest.raises(SpecError) as err:
        load_dataset("cifar10", root=tmp_path, url="http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert str(tmp_path / "cifar-10-python.tar.gz") in str(err.value)
    with pytest.raises(SpecError, match="archive not found"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar_default_cache_is_nas_data(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_DATA", str(tmp_path / "cache"))
    with pytest.raises(SpecError) as err:
        load_dataset("cifar100", download=False)
    assert str(tmp_path / "cache" / "cifar-100-python.tar.gz") in str(err.value)


def test_cifar_download_verifies_and_caches(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    archive, _ = _cifar_archive(served)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{archive.name}"
        cache = tmp_path / "cache"
        data = load_dataset("cifar10", root=cache, url=url, md5=_md5(archive))
        assert (cache / archive.name).is_file() and len(data.test) == 6
        with pytest.raises(SpecError, match="checksum mismatch"):
            load_dataset("cifar10", root=tmp_path / "other", url=url, md5="0" * 32)
        assert not (tmp_path / "other" / archive.name).exists()  # a bad download is not kept
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_cifar_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        blob = pickle.dumps({b"data": Evil()})
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(SpecError, match="refusing to load"):
        load_dataset("cifar10", root=path, md5=_md5(path))


def _image_folder(root: Path, classes=("cat", "dog"), per_class=5) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def test_image_folder(tmp_path):
    root = _image_folder(tmp_path / "images")
    data = load_dataset("imagefolder", root=root, size=16, val_fraction=0.2, test_fraction=0.2)
    assert data.classes == 2 and data.train.x.shape[1:] == (3, 16, 16)
    assert len(data.train) + len(data.val) + len(data.test) == 10
    (root / "empty").mkdir()
    with pytest.raises(SpecError, match="has no images"):
        load_dataset("imagefolder", root=root)
    with pytest.raises(SpecError, match="no such folder"):
        load_dataset("imagefolder", root=tmp_path / "missing")


def test_npz_layouts_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    for shape, channels in [((30, 8, 8), 1), ((30, 8, 8, 3), 3), ((30, 3, 8, 8), 3)]:  # grey, HWC, CHW
        path = tmp_path / f"d{len(shape)}_{shape[1]}.npz"
        np.savez(path, x=rng.integers(0, 256, shape, dtype=np.uint8), y=y)
        data = load_dataset("npz", root=path, size=8)
        assert data.classes == 3 and data.train.x.shape[1:] == (channels, 8, 8), shape
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((5, 8, 8)), y=np.zeros(4, dtype=np.int64))
    with pytest.raises(SpecError, match="5 images but 4 labels"):
        load_dataset("npz", root=bad)
    np.savez(bad, images=np.zeros((5, 8, 8)))
    with pytest.raises(SpecError, match="missing array 'x'"):
        load_dataset("npz", root=bad)


def test_unknown_dataset_has_a_hint():
    with pytest.raises(SpecError, match="did you mean 'cifar10'"):
        load_dataset("cifar11")


def test_batches_cover_every_sample_once():
    data = load_dataset("digits", size=16)
    seen = torch.cat([y for _, y in batches(data.train, 100, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(torch.sort(seen).values, torch.sort(data.train.y).values)
    plain = torch.cat([y for _, y in batches(data.train, 100)])
    assert torch.equal(plain, data.train.y)  # without shuffling, in order


def _crops(image: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every crop of the zero-padded image at the image's size, and their mirror images."""
    c, h, w = image.shape
    padded = torch.zeros(c, h + 2 * pad, w + 2 * pad)
    padded[:, pad:pad + h, pad:pad + w] = image
    crops = [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    return crops + [crop.flip(-1) for crop in crops]


@pytest.mark.parametrize("flip", [True, False])
def test_augmentation_is_a_padded_crop_and_maybe_a_flip_of_each_image(flip):
    """Checked against every crop written out one by one: each augmented image is its own image shifted by up to
    `pad` pixels (zeros come in) and, with flip, mirrored; offsets and flips vary across the batch."""
    from nas.data import augment_batch

    x = torch.rand(120, 2, 7, 9)
    out = augment_batch(x, torch.Generator().manual_seed(3), pad=2, flip=flip)
    assert out.shape == x.shape
    matches = []
    for image, augmented in zip(x, out):
        found = [i for i, crop in enumerate(_crops(image, 2)) if torch.equal(crop, augmented)]
        assert found, "an augmented image is not a padded crop of its own image"
        matches.append(found[0])
    offsets = 5 * 5  # crop k shifts by (k // 5, k % 5) in the padded image
    assert len({m % offsets for m in matches}) > 5  # many offsets, not one shift for the whole batch
    assert {m % offsets // 5 for m in matches} == {m % 5 for m in matches} == set(range(5))  # shifts of 0…2·pad
    flipped = [m >= offsets for m in matches]
    assert any(flipped) and not all(flipped) if flip else not any(flipped)


def test_a_cifar_root_may_name_the_archive_itself_present_or_not(tmp_path):
    """--data-root is a folder (the archive goes inside, under its official name) or the archive file itself:
    an existing file of any name, or a .tar.gz/.tgz path still to be fetched."""
    from nas.data import _archive_path

    assert _archive_path("cifar10", tmp_path) == tmp_path / "cifar-10-python.tar.gz"
    for missing in ("later.tar.gz", "later.tgz"):
        assert _archive_path("cifar10", tmp_path / missing) == tmp_path / missing
    present = tmp_path / "cifar10.bin"
    present.write_bytes(b"x")
    assert _archive_path("cifar100", present) == present
