"""A corpus of hostile and malformed inputs to the `nas` CLI, and a runner that caps memory and time.

Each case is a command line plus the files it needs. The runner forks one child per case from a parent that
has already imported torch (so a case costs milliseconds, not an interpreter start), caps the child's address
space with `resource.setrlimit`, kills it after a time limit, and sorts the outcome:

  ok        exit 0 where success is right          error     exit 2 with exactly one `error: ...` line
  traceback anything else that printed one or exited neither 0 nor 2
  noisy     exit 2 but more than one line on stderr (warnings before the error)
  hang      killed at the time limit               memory    hit the memory cap (MemoryError, allocator)
  wrong     exit 0 where an error was due, or the case's own check failed (a file outside was written...)

Used by tests/test_hostile.py (under caps, per class) and bench/hostile.py (the counts, for any checkout).
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import resource
import signal
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TINY = """name: tiny
input: {channels: 1, size: 8}
classes: 10
stem: [{op: conv, k: 3, c: 4, s: 1}]
stages: [{op: ir, k: 3, e: 1, c: 4, n: 1, s: 1}]
head: [{op: classifier}]
"""
OTHER = TINY.replace("c: 4, n: 1", "c: 8, n: 1").replace("name: tiny", "name: other")
TRAIN = ["train", "tiny.yaml", "--epochs", "1", "--size", "8", "--quiet"]  # digits, a second or two


@dataclass
class Case:
    name: str
    kind: str  # resources | runs | data | resume | odd
    argv: list[str]
    expect: str = "error"  # error | ok | any (exit 0 or the one-line error)
    files: dict[str, bytes | str | Callable[[Path], None]] = field(default_factory=dict)
    before: list[list[str]] = field(default_factory=list)  # commands that must succeed first
    check: Callable[[Path], bool] | None = None  # after the command: False means a silently wrong result
    message: str | None = None  # for an error case: a fragment of its one-line error (from MESSAGES below)


# -- file makers ---------------------------------------------------------------------------------------------
def _npz(**arrays):
    def make(path: Path) -> None:
        import numpy as np

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path.write_bytes(buffer.getvalue())
    return make


def _npz_lazy(builder: Callable[[], dict]):
    def make(path: Path) -> None:
        _npz(**builder())(path)
    return make


def _images(n=20, h=8, w=8, c=None, classes=2, nan=False, **extra):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (n, h, w) if c is None else (n, h, w, c)
    x = rng.random(shape).astype(np.float32)
    if nan:
        x[3, 0, 0] = np.nan
    y = np.arange(n) % classes
    return {"x": x, "y": y, **extra}


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _png_bomb(path: Path) -> None:
    """A tiny PNG that claims 100000×100000 pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _image_folder(make_image: Callable[[Path], None]):
    def make(path: Path) -> None:
        for label in ("a", "b"):
            (path / label).mkdir(parents=True)
            for i in range(3):
                make_image(path / label / f"{i}.png")
    return make


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _evil_pickle(path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))
    path.write_bytes(pickle.dumps({"model": Evil()}))


def _cifar_folder(data: object, labels: object):
    def make(path: Path) -> None:
        folder = path / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (folder / name).write_bytes(pickle.dumps({b"data": data() if callable(data) else data,
                                                      b"labels": labels}))
    return make


def _symlink_to(target: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(path.parent.parent / target if not target.startswith("/") else target, path)
    return make


def _untouched(rel: str, text: str) -> Callable[[Path], bool]:
    return lambda work: (work / rel).read_text() == text


def _huge_uint8():
    import numpy as np

    return np.zeros((10, 3072), dtype=np.uint8)


# -- the corpus ----------------------------------------------------------------------------------------------
ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
DEEP = "name: deep\nx: " + "[" * 20000 + "]" * 20000 + "\n"


def _space(body: str) -> str:
    return f"name: s\ninput: {{channels: 3, size: 32}}\nclasses: 10\n{body}"


CELL = _space("""choices:
  ops: {conv3: {op: conv, k: 3}, skip: {op: skip}}
cells:
  normal: {nodes: NODES, inputs: 2, ops: $ops, combine: add}
body: {pattern: [PATTERN], N: 1, F: 8}
head: [{op: classifier}]
""")

CASES: list[Case] = [
    # 1. resources: a tiny input never takes the machine
    Case("alias_bomb", "resources", ["show", "bomb.yaml"], files={"bomb.yaml": ALIAS_BOMB}),
    Case("deep_nesting", "resources", ["show", "deep.yaml"], files={"deep.yaml": DEEP}),
    Case("deep_mapping", "resources", ["show", "deepmap.yaml"],
         files={"deepmap.yaml": "name: d\nx: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"}),
    Case("big_one_line_yaml", "resources", ["show", "big.yaml"],
         files={"big.yaml": "name: big\nx: [" + "0, " * 8_000_000 + "0]\n"}),
    Case("many_nodes_yaml", "resources", ["show", "nodes.yaml"],
         files={"nodes.yaml": "name: n\nx: [" + "0," * 400_000 + "0]\n"}),
    Case("dev_zero", "resources", ["count", "/dev/zero"]),
    Case("dev_urandom", "resources", ["show", "/dev/urandom"]),
    Case("named_pipe", "resources", ["show", "pipe.yaml"], files={"pipe.yaml": _fifo}),
    Case("named_pipe_export", "resources", ["export", "pipe.yaml", "-o", "out"], files={"pipe.yaml": _fifo}),
    Case("depth_n_100000", "resources", ["count", "n.yaml"],
         files={"n.yaml": TINY.replace("n: 1", "n: 100000")}),
    Case("million_input_channels", "resources", ["count", "c.yaml"],
         files={"c.yaml": TINY.replace("channels: 1", "channels: 1000000")}),
    Case("width_1e7", "resources", ["count", "w.yaml"],
         files={"w.yaml": TINY.replace("c: 4, s: 1", "c: 10000000, s: 1")}),
    Case("input_size_1e6", "resources", ["count", "s.yaml"],
         files={"s.yaml": TINY.replace("size: 8", "size: 1000000")}),
    Case("classes_1e9", "resources", ["count", "k.yaml"],
         files={"k.yaml": TINY.replace("classes: 10", "classes: 1000000000")}),
    Case("kernel_1e5", "resources", ["count", "kk.yaml"],
         files={"kk.yaml": TINY.replace("size: 8", "size: 100000").replace("k: 3, c: 4", "k: 99999, c: 4")}),
    Case("cell_nodes_1000", "resources", ["show", "cell.yaml"],
         files={"cell.yaml": CELL.replace("NODES", "1000").replace("PATTERN", "normal")}),
    Case("cell_nodes_1000_count", "resources", ["count", "cell.yaml", "--sample", "0"],
         files={"cell.yaml": CELL.replace("NODES", "1000").replace("PATTERN", "normal")}),
    Case("scale_depth_1e6", "resources", ["scale", "--base", "mobilenetv2", "--depth", "1e6"]),
    Case("scale_phi_30", "resources", ["scale", "--phi", "30"]),
    Case("scale_phi_1e300", "resources", ["scale", "--phi", "1e300"]),
    Case("scale_width_1e300", "resources", ["scale", "--base", "mobilenetv2", "--width", "1e300"]),
    Case("scale_resolution_1e300", "resources", ["scale", "--resolution", "1e300"]),
    Case("scale_alpha_1e300", "resources", ["scale", "--phi", "2", "--alpha", "1e300"]),
    Case("scale_phi_negative_huge", "resources", ["scale", "--phi", "-1e300"]),
    Case("width_2_64", "resources", ["show", "w64.yaml"],
         files={"w64.yaml": TINY.replace("c: 4, s: 1", "c: 18446744073709551617, s: 1")}),
    Case("width_1e300_float", "resources", ["show", "wf.yaml"],
         files={"wf.yaml": TINY.replace("c: 4, s: 1", "c: 1.0e+300, s: 1")}),
    Case("input_size_huge_cli", "resources", ["count", "tiny.yaml", "--input-size", "99999999999999999999"],
         files={"tiny.yaml": TINY}),
    Case("input_size_big_cli", "resources", ["count", "resnet18", "--input-size", "100000"]),
    Case("train_size_huge", "resources", TRAIN[:-1] + ["--size", "100000", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("batch_size_huge", "resources", TRAIN + ["--batch-size", "99999999999999999999999", "-o", "r"],
         files={"tiny.yaml": TINY}),
    Case("epochs_huge", "resources", TRAIN + ["--epochs", "100000000000000000000000", "-o", "r"],
         files={"tiny.yaml": TINY}),
    # `--sample` takes any integer seed (Python's Random accepts it), unlike --seed's 0…2^32-1
    Case("sample_seed_huge", "resources", ["show", "fbnet", "--sample", "99999999999999999999999999"], "ok"),
    Case("channels_huge_cli", "resources", TRAIN + ["--channels", "1000000", "-o", "r"], files={"tiny.yaml": TINY}),

    # 2. run folders
    Case("train_output_is_file", "runs", TRAIN + ["-o", "afile"], files={"tiny.yaml": TINY, "afile": "x"}),
    Case("train_output_under_file", "runs", TRAIN + ["-o", "afile/run"], files={"tiny.yaml": TINY, "afile": "x"}),
    Case("train_over_existing_run", "runs", TRAIN + ["-o", "run"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"]]),
    Case("train_into_user_folder", "runs", TRAIN + ["-o", "mine"], files={"tiny.yaml": TINY, "mine/notes.txt": "keep"},
         check=_untouched("mine/notes.txt", "keep")),
    Case("train_resume_missing", "runs", ["train", "--resume", "nowhere", "--quiet"]),
    Case("train_resume_user_folder", "runs", ["train", "--resume", "mine", "--quiet"],
         files={"mine/notes.txt": "keep"}),
    Case("export_into_own_run", "runs", ["export", "run", "-o", "run"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"]]),
    Case("export_into_own_run_sub", "runs", ["export", "run", "-o", "run/export"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"]]),
    Case("export_through_symlink", "runs", ["export", "tiny.yaml", "-o", "out"],
         files={"tiny.yaml": TINY, "victim.txt": "keep", "out/model.py": _symlink_to("victim.txt")},
         check=_untouched("victim.txt", "keep")),
    Case("export_output_is_file", "runs", ["export", "tiny.yaml", "-o", "afile"],
         files={"tiny.yaml": TINY, "afile": "x"}),
    Case("export_twice", "runs", ["export", "tiny.yaml", "-o", "out"], files={"tiny.yaml": TINY},
         before=[["export", "tiny.yaml", "-o", "out"]]),
    Case("scale_output_is_dir", "runs", ["scale", "--phi", "1", "-o", "adir"], files={"adir/x": "x"}),
    Case("scale_output_under_file", "runs", ["scale", "--phi", "1", "-o", "afile/x.yaml"], files={"afile": "x"}),

    # 3. bad data, refused at load with the reason
    Case("npz_nan_pixel", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: _images(nan=True))}),
    Case("npz_channels_last_5", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: _images(h=32, w=32, c=5))}),
    Case("npz_fewer_labels", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: {**_images(), "y": _images()["y"][:5]})}),
    Case("npz_two_samples", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: _images(n=2))}),
    Case("npz_one_sample", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: _images(n=1, classes=1))}),
    Case("npz_huge_labels", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: {**_images(), "y": _images()["y"] * 10**9})}),
    Case("npz_float_labels", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: {**_images(), "y": _images()["y"] + 0.5})}),
    Case("npz_inf_pixel", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY,
                 "d.npz": _npz_lazy(lambda: {**_images(), "x": _images()["x"] + __import__("numpy").float32("inf")})}),
    Case("npz_object_array", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: {**_images(),
                                                               "x": __import__("numpy").array([{}] * 20)})}),
    Case("npz_string_images", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: {**_images(),
                                                               "x": __import__("numpy").array(["a"] * 20)})}),
    Case("npz_not_zip", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": b"PK\x03\x04garbage" * 10}),
    Case("npz_truncated", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "full.npz": _npz_lazy(_images),
                "d.npz": lambda p: p.write_bytes((p.parent / "full.npz").read_bytes()[:300])}),
    Case("npz_fifo", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _fifo}),
    Case("npz_5d", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: {**_images(), "x": _images()["x"][:, None, None]})}),
    Case("npz_empty_images", "data", TRAIN + ["--data", "npz", "--data-root", "d.npz", "-o", "r"],
         files={"tiny.yaml": TINY, "d.npz": _npz_lazy(lambda: _images(h=0, w=0))}),
    Case("cifar_wrong_shape", "data", TRAIN + ["--data", "cifar10", "--data-root", "c", "-o", "r"],
         files={"tiny.yaml": TINY, "c": _cifar_folder(lambda: __import__("numpy").zeros((10, 100), "uint8"),
                                                       list(range(10)))}),
    Case("cifar_fewer_labels", "data", TRAIN + ["--data", "cifar10", "--data-root", "c", "-o", "r"],
         files={"tiny.yaml": TINY, "c": _cifar_folder(_huge_uint8, [1])}),
    Case("cifar_wrong_type", "data", TRAIN + ["--data", "cifar10", "--data-root", "c", "-o", "r"],
         files={"tiny.yaml": TINY, "c": _cifar_folder("not an array", [1] * 10)}),
    Case("cifar_label_out_of_range", "data", TRAIN + ["--data", "cifar10", "--data-root", "c", "-o", "r"],
         files={"tiny.yaml": TINY, "c": _cifar_folder(_huge_uint8, [99] * 10)}),
    Case("cifar_list_not_dict", "data", TRAIN + ["--data", "cifar10", "--data-root", "c", "-o", "r"],
         files={"tiny.yaml": TINY, "c/cifar-10-batches-py/data_batch_1": pickle.dumps([1, 2])}),
    Case("image_bomb", "data", TRAIN + ["--data", "imagefolder", "--data-root", "imgs", "-o", "r"],
         files={"tiny.yaml": TINY, "imgs": _image_folder(_png_bomb)}),
    Case("image_not_an_image", "data", TRAIN + ["--data", "imagefolder", "--data-root", "imgs", "-o", "r"],
         files={"tiny.yaml": TINY, "imgs": _image_folder(lambda p: p.write_bytes(b"\x89PNG\r\n garbage"))}),
    Case("imagefolder_is_file", "data", TRAIN + ["--data", "imagefolder", "--data-root", "tiny.yaml", "-o", "r"],
         files={"tiny.yaml": TINY}),
    Case("weight_decay_negative", "data", TRAIN + ["--weight-decay", "-1", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("warmup_negative", "data", TRAIN + ["--warmup", "-5", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("lr_huge", "data", TRAIN + ["--lr", "1e300", "-o", "r"], files={"tiny.yaml": TINY},
         check=lambda w: not (w / "r" / "weights.pt").exists()),
    Case("label_smoothing_2", "data", TRAIN + ["--label-smoothing", "2", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("drop_path_negative", "data", TRAIN + ["--drop-path", "-0.5", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("seed_negative", "data", TRAIN + ["--seed", "-1", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("seed_huge", "data", TRAIN + ["--seed", str(2**70), "-o", "r"], files={"tiny.yaml": TINY}),
    Case("eval_seed_negative", "data", ["eval", "tiny.yaml", "--weights", "w.pt", "--seed", "-1"],
         files={"tiny.yaml": TINY, "w.pt": b""}),
    Case("size_zero", "data", TRAIN[:-1] + ["--size", "0", "-o", "r"], files={"tiny.yaml": TINY}),
    Case("metrics_strict_json", "data", TRAIN + ["-o", "r"], "ok", files={"tiny.yaml": TINY},
         check=lambda w: _strict_json(w / "r" / "metrics.json")),

    # 4. resume and checkpoints: validated before loading
    Case("resume_truncated_checkpoint", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__truncate__", "run/checkpoint.pt"]]),
    Case("resume_empty_checkpoint", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__empty__", "run/checkpoint.pt"]]),
    Case("resume_hostile_checkpoint", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__evil__", "run/checkpoint.pt"]], check=lambda w: not (w / "pwned").exists()),
    Case("resume_mismatched_checkpoint", "resume", ["train", "--resume", "run", "--quiet"],
         files={"tiny.yaml": TINY, "other.yaml": OTHER},
         before=[TRAIN + ["-o", "run"], ["train", "other.yaml", "--epochs", "1", "--size", "8", "--quiet", "-o", "o"],
                 ["__copy__", "o/checkpoint.pt", "run/checkpoint.pt"]]),
    Case("resume_truncated_config", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__truncate__", "run/config.json"]]),
    Case("resume_config_not_object", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__write__", "run/config.json", "[1, 2]"]]),
    Case("resume_config_bad_types", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__write__", "run/config.json", '{"args": {"epochs": "many", "lr": []}}']]),
    Case("resume_config_unknown_key", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__write__", "run/config.json", '{"args": {"func": 1, "epochs": 2}}']]),
    Case("resume_config_nan", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__write__", "run/config.json", '{"args": {"lr": NaN}}']]),
    Case("resume_arch_missing", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__remove__", "run/arch.yaml"]]),
    Case("resume_checkpoint_is_dir", "resume", ["train", "--resume", "run", "--quiet"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__remove__", "run/checkpoint.pt"], ["__mkdir__", "run/checkpoint.pt"]]),
    Case("eval_truncated_weights", "resume", ["eval", "tiny.yaml", "--size", "8", "--weights", "run/weights.pt"],
         files={"tiny.yaml": TINY}, before=[TRAIN + ["-o", "run"], ["__truncate__", "run/weights.pt"]]),
    Case("eval_empty_weights", "resume", ["eval", "tiny.yaml", "--weights", "w.pt"],
         files={"tiny.yaml": TINY, "w.pt": b""}),
    Case("eval_hostile_weights", "resume", ["eval", "tiny.yaml", "--weights", "w.pt"],
         files={"tiny.yaml": TINY, "w.pt": _evil_pickle}, check=lambda w: not (w / "pwned").exists()),
    Case("eval_mismatched_weights", "resume", ["eval", "other.yaml", "--size", "8", "--weights", "run/weights.pt"],
         files={"tiny.yaml": TINY, "other.yaml": OTHER}, before=[TRAIN + ["-o", "run"]]),
    Case("eval_weights_fifo", "resume", ["eval", "tiny.yaml", "--weights", "w.pt"],
         files={"tiny.yaml": TINY, "w.pt": _fifo}),
    Case("eval_weights_dir", "resume", ["eval", "tiny.yaml", "--weights", "."], files={"tiny.yaml": TINY}),
    Case("eval_weights_not_dict", "resume", ["eval", "tiny.yaml", "--weights", "w.pt"],
         files={"tiny.yaml": TINY, "w.pt": lambda p: __import__("torch").save([1, 2, 3], p)}),
    Case("export_truncated_weights", "resume", ["export", "run", "-o", "out"], files={"tiny.yaml": TINY},
         before=[TRAIN + ["-o", "run"], ["__truncate__", "run/weights.pt"]]),
    Case("export_mismatched_weights", "resume", ["export", "tiny.yaml", "--weights", "o/weights.pt", "-o", "out"],
         files={"tiny.yaml": TINY, "other.yaml": OTHER},
         before=[["train", "other.yaml", "--epochs", "1", "--size", "8", "--quiet", "-o", "o"]]),

    # 5. odd inputs the issue lists, and the reader's own errors
    Case("op_is_list", "odd", ["show", "o.yaml"], files={"o.yaml": TINY.replace("op: conv", "op: [conv]")}),
    Case("pattern_with_version", "odd", ["show", "p.yaml"],
         files={"p.yaml": CELL.replace("NODES", "2").replace("PATTERN", "normal@0.0.0")}),
    Case("nul_bytes", "odd", ["show", "nul.yaml"], files={"nul.yaml": TINY.replace("tiny", "ti\0ny")}),
    Case("control_bytes", "odd", ["show", "ctl.yaml"], files={"ctl.yaml": TINY.replace("tiny", "ti\x07ny")}),
    Case("recursive_alias", "odd", ["show", "rec.yaml"], files={"rec.yaml": "name: r\nx: &a [*a]\n"}),
    Case("undefined_alias", "odd", ["show", "und.yaml"], files={"und.yaml": "name: r\nx: *nothing\n"}),
    Case("binary_file", "odd", ["show", "bin.yaml"], files={"bin.yaml": bytes(range(256)) * 4}),
    Case("utf16_file", "odd", ["show", "u16.yaml"], files={"u16.yaml": TINY.encode("utf-16")}),
    Case("width_float_string", "odd", ["show", "f.yaml"],
         files={"f.yaml": TINY.replace("c: 4, s: 1", "c: 1.0e9, s: 1")}),
    Case("kernel_float", "odd", ["show", "kf.yaml"], files={"kf.yaml": TINY.replace("k: 3, c: 4", "k: 3.0, c: 4")}),
    Case("kernel_bool", "odd", ["show", "kb.yaml"], files={"kb.yaml": TINY.replace("k: 3, c: 4", "k: true, c: 4")}),
    Case("width_2_63", "odd", ["count", "w63.yaml"],
         files={"w63.yaml": TINY.replace("c: 4, s: 1", f"c: {2**63}, s: 1")}),
    Case("stride_huge", "odd", ["show", "st.yaml"], files={"st.yaml": TINY.replace("c: 4, s: 1", f"c: 4, s: {2**70}")}),
    Case("n_huge", "odd", ["show", "nh.yaml"], files={"nh.yaml": TINY.replace("n: 1", f"n: {2**70}")}),
    Case("dir_as_file", "odd", ["show", "."]),
    Case("missing_file", "odd", ["count", "missing.yaml"]),
    Case("scale_base_dir", "odd", ["scale", "--base", ".", "--phi", "1"]),
    Case("sample_negative", "odd", ["show", "fbnet", "--sample", "-1"], "ok"),
    Case("count_input_size_zero", "odd", ["count", "tiny.yaml", "--input-size", "0"], files={"tiny.yaml": TINY}),
    Case("export_bad_format", "odd", ["export", "tiny.yaml", "--format", "exe", "-o", "out"],
         files={"tiny.yaml": TINY}),
    Case("export_class_name_code", "odd", ["export", "tiny.yaml", "--class-name", "Net(); import os", "-o", "out"],
         files={"tiny.yaml": TINY}),
    Case("train_space_not_arch", "odd", TRAIN[:1] + ["fbnet"] + TRAIN[2:] + ["-o", "r"]),
    Case("device_bogus", "odd", ["count", "tiny.yaml", "--latency", "--device", "tpu:99"], files={"tiny.yaml": TINY}),
]


# A fragment of each error case's one-line message: the rule that refused it, not just any error.
MESSAGES = {
    'alias_bomb': 'expands to more than 20000 values through aliases',
    'deep_nesting': 'nested more than 64 levels deep (a spec needs only a few)',
    'deep_mapping': 'nested more than 64 levels deep (a spec needs only a few)',
    'big_one_line_yaml': 'file too large (24000017 bytes, limit 2097152)',
    'many_nodes_yaml': 'more than 20000 values (this is not a search space)',
    'dev_zero': 'not a regular file',
    'dev_urandom': 'not a regular file',
    'named_pipe': 'not a regular file',
    'named_pipe_export': 'not a regular file',
    'depth_n_100000': "'n' (layers in the row) is 100000, above the limit of 1000",
    'million_input_channels': 'not enough memory to run tiny at 1000000×8×8',
    'width_1e7': "'tiny' needs about 7.2 GB of activations for one 1×8×8",
    'input_size_1e6': "'tiny' needs about 63329.9 GB of activations for one",
    'classes_1e9': "'tiny' has 5,000,000,112 parameters (18.6 GB), over the",
    'kernel_1e5': "'tiny' needs about 633.3 GB of activations for one",
    'cell_nodes_1000': "'nodes' (nodes in the cell) is 1000, above the limit of 64",
    'cell_nodes_1000_count': "'nodes' (nodes in the cell) is 1000, above the limit of 64",
    'scale_depth_1e6': 'depth multiplier is 1e+06, above the limit of 100',
    'scale_phi_30': 'depth multiplier is 237.4, above the limit of 100',
    'scale_phi_1e300': 'φ = 1e+300 overflows α^φ, β^φ or γ^φ',
    'scale_width_1e300': 'width multiplier is 1e+300, above the limit of 100',
    'scale_resolution_1e300': 'resolution multiplier is 1e+300, above the limit of 100',
    'scale_alpha_1e300': 'φ = 2 overflows α^φ, β^φ or γ^φ',
    'scale_phi_negative_huge': 'nas scale: argument --phi: expected one argument',
    'width_2_64': 'integer too large (184467440737…, 20 digits)',
    'width_1e300_float': "conv: 'c' is 1e+300, above the limit of 9007199254740992",
    'input_size_huge_cli': 'expected a positive integer up to 2147483647, got',
    'input_size_big_cli': "'resnet18' needs about 1415.6 GB of activations for one",
    'train_size_huge': '1797 images of 1×100000×100000 as float32 need 66943.5 GB',
    'batch_size_huge': 'expected a positive integer up to 2147483647, got 99999999…',
    'epochs_huge': 'expected a positive integer up to 2147483647, got 10000000…',
    'channels_huge_cli': '1797 images of 1000000×8×8 as float32 need 428.4 GB, over',
    'train_output_is_file': 'not a folder (the run folder path is a file; choose another',
    'train_output_under_file': 'the run folder would be under a file (choose another folder)',
    'train_over_existing_run': 'the run folder exists and is not empty',
    'train_into_user_folder': 'the folder exists, is not empty and is not a run folder',
    'train_resume_missing': 'no such run folder',
    'train_resume_user_folder': 'not a run folder (no .nas-run marker)',
    'export_into_own_run': 'refusing to export into the run folder it reads',
    'export_into_own_run_sub': 'refusing to export into the run folder it reads',
    'export_through_symlink': 'the folder exists, is not empty and is not a run folder',
    'export_output_is_file': 'not a folder (the run folder path is a file; choose another',
    'export_twice': 'the run folder exists and is not empty',
    'scale_output_is_dir': 'is a folder, expected a file path (e.g. adir/scaled.yaml)',
    'scale_output_under_file': "'afile' is a file, so 'afile/x.yaml' cannot be created",
    'npz_nan_pixel': '1 pixel value(s) are NaN or infinite (first in image 3)',
    'npz_channels_last_5': 'ambiguous image layout (20, 32, 32, 5)',
    'npz_fewer_labels': '20 images but 5 labels (there must be one label per image)',
    'npz_two_samples': 'too few samples to split: train 2 / val 0 / test 0',
    'npz_one_sample': 'too few samples to split: train 1 / val 0 / test 0',
    'npz_huge_labels': 'label 1000000000 is out of range (at most 99999)',
    'npz_float_labels': 'labels must be a 1-D array of integers, got float64 of',
    'npz_inf_pixel': '1280 pixel value(s) are NaN or infinite (first in image 0)',
    'npz_object_array': 'cannot read .npz: Object arrays cannot be loaded when',
    'npz_string_images': 'images must be numbers, got an array of <U1',
    'npz_not_zip': 'cannot read .npz: File is not a zip file',
    'npz_truncated': 'cannot read .npz: File is not a zip file',
    'npz_fifo': 'not a regular file (an .npz with arrays x (images) and y',
    'npz_5d': 'images must be N×H×W, N×H×W×C or N×C×H×W, got shape',
    'npz_empty_images': 'empty images: shape (20, 1, 0, 0)',
    'cifar_wrong_shape': 'CIFAR images must be N×3072 uint8, got ndarray (10, 100)',
    'cifar_fewer_labels': '10 images but 1 labels (there must be one label per image)',
    'cifar_wrong_type': 'CIFAR images must be N×3072 uint8, got str None',
    'cifar_label_out_of_range': 'label 99 is out of range (at most 9)',
    'cifar_list_not_dict': 'not a CIFAR batch',
    'image_bomb': 'cannot read image: Image size (10000000000 pixels) exceeds',
    'image_not_an_image': "cannot read image: cannot identify image file 'imgs/a/0.png'",
    'imagefolder_is_file': 'no such folder (one sub-folder of images per class)',
    'weight_decay_negative': 'weight decay must be in [0, 1e+06], got -1.0',
    'warmup_negative': 'warmup epochs must be in [0, 1e+06], got -5.0',
    'lr_huge': 'learning rate must be in (0, 1e+06], got 1e+300',
    'label_smoothing_2': 'label smoothing must be in [0, 1), got 2.0',
    'drop_path_negative': 'drop-path rate must be in [0, 1), got -0.5',
    'seed_negative': 'expected an integer seed from 0 to 2^32-1, got -1',
    'seed_huge': 'expected an integer seed from 0 to 2^32-1, got 11805916…',
    'eval_seed_negative': 'expected an integer seed from 0 to 2^32-1, got -1',
    'size_zero': 'expected a positive integer up to 2147483647, got 0',
    'resume_truncated_checkpoint': 'not a checkpoint file, or a damaged or unsafe one',
    'resume_empty_checkpoint': 'the checkpoint file is empty',
    'resume_hostile_checkpoint': 'not a checkpoint file, or a damaged or unsafe one',
    'resume_mismatched_checkpoint': 'weights do not fit the architecture',
    'resume_truncated_config': 'bad JSON: Expecting property name enclosed in double quotes',
    'resume_config_not_object': "config.json must be an object with 'args'",
    'resume_config_bad_types': "config.json: 'epochs' has the wrong type (str)",
    'resume_config_unknown_key': "config.json has an unknown setting 'func'",
    'resume_config_nan': "'NaN' is not strict JSON (numbers must be finite; use null)",
    'resume_arch_missing': 'no such file (check the path)',
    'resume_checkpoint_is_dir': 'the checkpoint path is not a regular file',
    'eval_truncated_weights': 'not a weights file, or a damaged or unsafe one',
    'eval_empty_weights': 'the weights file is empty',
    'eval_hostile_weights': 'not a weights file, or a damaged or unsafe one',
    'eval_mismatched_weights': 'weights do not fit the architecture',
    'eval_weights_fifo': 'the weights path is not a regular file',
    'eval_weights_dir': 'the weights path is not a regular file',
    'eval_weights_not_dict': 'not a state_dict',
    'export_truncated_weights': 'not a weights file, or a damaged or unsafe one',
    'export_mismatched_weights': 'weights do not fit the architecture',
    'op_is_list': "unknown op ['conv'] ('op' takes one op name)",
    'pattern_with_version': "cannot read the width multiplier '@0.0.0'",
    'nul_bytes': 'character U+0000 is not allowed in YAML',
    'control_bytes': 'character U+0007 is not allowed in YAML',
    'recursive_alias': "recursive alias '*a' inside its own anchor",
    'undefined_alias': "YAML syntax: found undefined alias 'nothing'",
    'binary_file': 'not a UTF-8 text file (byte 0x80) (save it as UTF-8)',
    'utf16_file': 'not a UTF-8 text file (byte 0xff) (save it as UTF-8)',
    'width_float_string': "conv: 'c' must be an integer, got 1000000000.0",
    'kernel_float': "conv: 'k' must be an integer, got 3.0 (write 3)",
    'kernel_bool': "conv: 'k' must be a number, got True",
    'width_2_63': 'integer too large (922337203685…, 19 digits)',
    'stride_huge': 'integer too large (118059162071…, 22 digits)',
    'n_huge': 'integer too large (118059162071…, 22 digits)',
    'dir_as_file': 'is a directory, expected a YAML file',
    'missing_file': 'no such file (check the path)',
    'scale_base_dir': 'is a directory, expected a YAML file',
    'count_input_size_zero': 'expected a positive integer up to 2147483647, got 0',
    'export_bad_format': "unknown export format 'exe'",
    'export_class_name_code': "'Net(); import os' is not a valid Python class name",
    'train_space_not_arch': "'fbnet' is a search space with 22 choices",
    'device_bogus': "unknown device 'tpu:99' (use auto, cpu, cuda, cuda:N or mps)",
}


def _with_message(case: Case) -> Case:
    """An error case carries its expected message fragment (test_hostile asserts it is in the one-line error)."""
    return dataclasses.replace(case, message=MESSAGES.get(case.name))


CASES = [_with_message(case) for case in CASES]


def _strict_json(path: Path) -> bool:
    def refuse(name):
        raise ValueError(name)
    try:
        json.loads(path.read_text(), parse_constant=refuse)
    except (ValueError, OSError):
        return False
    return True


# -- the runner ----------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    case: str
    kind: str
    verdict: str
    code: int | None
    seconds: float
    extra_mb: float
    stderr: str


def _materialize(case: Case, work: Path) -> None:
    for rel, content in case.files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def _file_step(step: list[str], work: Path) -> None:
    """Setup steps that damage files: truncate, empty, hostile pickle, copy, write, remove, mkdir."""
    op, target = step[0], work / step[1]
    if op == "__truncate__":
        target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 2)])
    elif op == "__empty__":
        target.write_bytes(b"")
    elif op == "__evil__":
        _evil_pickle(target)
    elif op == "__copy__":
        (work / step[2]).write_bytes(target.read_bytes())
    elif op == "__write__":
        target.write_text(step[2])
    elif op == "__remove__":
        target.unlink()
    elif op == "__mkdir__":
        target.mkdir()
    else:
        raise ValueError(op)


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def run_argv(argv: list[str], work: Path, mem_mb: int, timeout: float) -> tuple[int | None, str, float, float]:
    """Run `nas argv` in a forked child under caps: (exit code or None on timeout, stderr, seconds, extra MB)."""
    from nas.cli import main

    err_path = work / f".stderr-{time.monotonic_ns()}"
    limit = _vm_bytes() + mem_mb * 1024 * 1024
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.chdir(work)
            fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001 - the child reports every crash as a traceback
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code if isinstance(code, int) else 1)
    code: int | None = None
    usage = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() - start > timeout:
            os.kill(pid, signal.SIGKILL)
            os.wait4(pid, 0)
            break
        time.sleep(0.01)
    seconds = time.monotonic() - start
    extra_mb = max(0, (usage.ru_maxrss - base_rss) / 1024) if usage and code is not None else 0.0
    stderr = err_path.read_text(errors="replace") if err_path.exists() else ""
    err_path.unlink(missing_ok=True)
    return code, stderr, seconds, extra_mb


MEMORY_SIGNS = ("MemoryError", "DefaultCPUAllocator", "can't allocate memory", "Cannot allocate memory",
                "out of memory")


def run_case(case: Case, work: Path, mem_mb: int = 1024, timeout: float = 20.0) -> Outcome:
    work.mkdir(parents=True, exist_ok=True)
    _materialize(case, work)
    for step in case.before:
        if step[0].startswith("__"):
            _file_step(step, work)
            continue
        code, stderr, _, _ = run_argv(step, work, 2048, 120)
        if code != 0:
            return Outcome(case.name, case.kind, "setup-failed", code, 0, 0, stderr)
    code, stderr, seconds, extra_mb = run_argv(case.argv, work, mem_mb, timeout)
    lines = stderr.strip().splitlines()
    if code is None:
        verdict = "hang"
    elif any(sign in stderr for sign in MEMORY_SIGNS) or code < 0:
        verdict = "memory"
    elif "Traceback" in stderr or code not in (0, 2):
        verdict = "traceback"
    elif code == 2 and not (len(lines) == 1 and lines[0].startswith("error: ")):
        verdict = "noisy"
    elif code == 0 and case.expect == "error":
        verdict = "wrong"
    elif code == 2 and case.expect == "ok":
        verdict = "wrong"
    else:
        verdict = "ok" if code == 0 else "error"
    if verdict in ("ok", "error") and case.check is not None and not case.check(work):
        verdict = "wrong"
    return Outcome(case.name, case.kind, verdict, code, seconds, extra_mb, stderr)
