"""Run folders: one writer at a time, atomic files, no accidental overwrite, no writing through links."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nas.dsl.errors import SpecError
from nas.runs import MARKER, TEMP_SUFFIX, RunDir, is_within, read_json

ROOT = Path(__file__).resolve().parent.parent


def _child(code: str, env: dict | None = None) -> subprocess.Popen:
    """A Python process running `code` with this checkout's `nas` importable; it prints 'ready' when set."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env)


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()


def test_new_run_has_marker_and_lock(tmp_path):
    with RunDir.create(tmp_path / "a" / "run", kind="search") as run:
        assert run.path == tmp_path / "a" / "run"
        marker = read_json(run.path / MARKER)
        assert marker["kind"] == "search" and marker["pid"] == os.getpid()
        assert (run.path / ".lock").read_text().strip() == str(os.getpid())


def test_second_writer_in_another_process_is_told_the_holder_pid(tmp_path):
    run_dir = tmp_path / "run"
    holder = _child(f"from nas.runs import RunDir\nimport time\nr = RunDir.create({str(run_dir)!r})\n"
                    "print('ready', flush=True)\ntime.sleep(60)\n")
    try:
        _wait_ready(holder)
        for kwargs in ({}, {"resume": True}, {"overwrite": True}):
            with pytest.raises(SpecError, match=f"in use by pid {holder.pid}") as err:
                RunDir.create(run_dir, **kwargs)
            assert "\n" not in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the killed holder's lock: the run can be resumed
    with RunDir.create(run_dir, resume=True) as run:
        assert run.path == run_dir


def test_second_writer_in_the_same_process_is_refused(tmp_path):
    with RunDir.create(tmp_path / "run"):
        with pytest.raises(SpecError, match=f"in use by pid {os.getpid()}"):
            RunDir.create(tmp_path / "run", overwrite=True)
    with RunDir.create(tmp_path / "run", overwrite=True):  # released on close
        pass


def test_existing_run_needs_resume_or_overwrite(tmp_path):
    with RunDir.create(tmp_path / "run") as run:
        run.write_text("weights.pt", "old")
    with pytest.raises(SpecError, match="--resume .* --overwrite"):
        RunDir.create(tmp_path / "run")
    with RunDir.create(tmp_path / "run", resume=True) as run:
        assert (run.path / "weights.pt").read_text() == "old"
    with RunDir.create(tmp_path / "run", overwrite=True) as run:
        assert sorted(p.name for p in run.path.iterdir()) == [".lock", MARKER]
    with pytest.raises(SpecError, match="exclude each other"):
        RunDir.create(tmp_path / "run", resume=True, overwrite=True)


def test_overwrite_never_clears_a_user_folder(tmp_path):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "cat.jpg").write_text("precious")
    for kwargs in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(SpecError, match="not a run folder|not empty"):
            RunDir.create(user, **kwargs)
    assert sorted(p.name for p in user.iterdir()) == ["cat.jpg"]  # not even a lock file was left
    empty = tmp_path / "empty"
    empty.mkdir()
    with RunDir.create(empty, overwrite=True):  # an empty folder is fine to take
        pass


def test_resume_requires_a_run_folder_of_the_same_kind(tmp_path):
    with pytest.raises(SpecError, match="no such run folder"):
        RunDir.create(tmp_path / "missing", resume=True)
    with RunDir.create(tmp_path / "run", kind="export"):
        pass
    with pytest.raises(SpecError, match="'export' run folder, not a 'train'"):
        RunDir.create(tmp_path / "run", resume=True)
    (tmp_path / "run" / MARKER).write_text('{"kind": ')  # truncated marker
    with pytest.raises(SpecError, match="bad JSON"):
        RunDir.create(tmp_path / "run", kind="export", resume=True)


def test_path_problems_are_one_line_errors(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(SpecError, match="not a folder"):
        RunDir.create(afile)
    with pytest.raises(SpecError, match="under a file|not a directory"):
        RunDir.create(afile / "run")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(SpecError, match="ermission denied"):
            RunDir.create(locked / "run")
        with pytest.raises(SpecError, match="ermission denied"):
            RunDir.create(locked)


def test_symlinks_are_never_written_through(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (tmp_path / "elsewhere").mkdir()
    with RunDir.create(tmp_path / "run") as run:
        os.symlink(outside, run.path / "model.py")
        os.symlink(tmp_path / "elsewhere", run.path / "sub")
        with pytest.raises(SpecError, match="symbolic link"):
            run.write_text("model.py", "evil")
        with pytest.raises(SpecError, match="symbolic link"):
            run.write_text("sub/model.py", "evil")
        with pytest.raises(SpecError, match="symbolic link"):
            run.append_line("model.py", "evil")
        for bad in ("../x", "/etc/passwd", "a/../../x"):
            with pytest.raises(SpecError, match="a run file must be a relative path inside the run folder"):
                run.file(bad)
        for bad in (MARKER, ".lock"):
            with pytest.raises(SpecError, match="is the run folder's own bookkeeping file"):
                run.file(bad)
    assert outside.read_text() == "keep me"
    assert list((tmp_path / "elsewhere").iterdir()) == []
    os.symlink(tmp_path / "elsewhere", tmp_path / "linked")
    with pytest.raises(SpecError, match="symbolic link"):
        RunDir.create(tmp_path / "linked")


def test_writes_are_whole_and_nested(tmp_path):
    with RunDir.create(tmp_path / "run") as run:
        run.write_text("a/b/c.txt", "one")
        run.write_text("a/b/c.txt", "two")
        run.write_bytes("w.bin", b"\x00\x01")
        run.append_line("log.txt", "first\nline")
        run.append_line("log.txt", "second")
        assert (run.path / "a/b/c.txt").read_text() == "two"
        assert (run.path / "w.bin").read_bytes() == b"\x00\x01"
        assert (run.path / "log.txt").read_text() == "first line\nsecond\n"
        assert not list(run.path.rglob(f"*{TEMP_SUFFIX}"))
    run.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        run.write_text("late.txt", "x")


def test_save_torch_round_trips(tmp_path):
    import torch

    with RunDir.create(tmp_path / "run") as run:
        path = run.save_torch("weights.pt", {"w": torch.arange(3.0)})
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(3.0))


def test_json_is_strict(tmp_path):
    import numpy as np
    import torch

    with RunDir.create(tmp_path / "run") as run:
        path = run.write_json("metrics.json", {"acc": float("nan"), "loss": [1.5, float("inf"), -float("inf")],
                                               "np": np.float32(0.5), "n": np.int64(3), "t": torch.tensor(2.0),
                                               "pair": (1, None)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"acc": None, "loss": [1.5, None, None], "np": 0.5, "n": 3, "t": 2.0,
                                "pair": [1, None]}
    assert read_json(path)["loss"] == [1.5, None, None]


@pytest.mark.parametrize("content, message", [
    ("", "empty"), ('{"a": 1', "truncated"), ('{"a": NaN}', "not strict JSON"), ("[Infinity]", "not strict"),
    ("\xff", "UTF-8"), ("[" * 100000 + "]" * 100000, "nested too deeply|bad JSON"),
])
def test_read_json_refuses_bad_files_in_one_line(tmp_path, content, message):
    path = tmp_path / "m.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(SpecError, match=message) as err:
        read_json(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_read_json_refuses_odd_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="not a regular file"):
        read_json(fifo)  # would hang forever if opened
    with pytest.raises(SpecError, match="not a regular file"):
        read_json(tmp_path)
    with pytest.raises(SpecError, match="No such file|no such file"):
        read_json(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 100 + "0]")
    with pytest.raises(SpecError, match="too large"):
        read_json(big, limit=50)


def test_is_within(tmp_path):
    (tmp_path / "run" / "sub").mkdir(parents=True)
    assert is_within(tmp_path / "run", tmp_path / "run")
    assert is_within(tmp_path / "run" / "sub" / "x", tmp_path / "run")
    assert is_within(tmp_path / "other" / ".." / "run" / "y", tmp_path / "run")
    assert not is_within(tmp_path / "run2", tmp_path / "run")
    os.symlink(tmp_path / "run" / "sub", tmp_path / "link")
    assert is_within(tmp_path / "link" / "x", tmp_path / "run")


_KILL_WRITER = """
import json, os, sys, time
from nas.runs import PAUSE_ENV, RunDir
if sys.argv[1] == "save_torch":
    import torch  # once here, not in each writer
sleep = time.sleep
def paused(seconds):  # the runs module sleeps only in that pause: the temp file is whole and fsynced
    print("paused", os.getpid(), flush=True)
    sleep(seconds)
for line in sys.stdin:  # each write in a writer process of its own, forked from this one, for the test to kill
    run_dir, mode, rel, args = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            run = RunDir.create(run_dir, resume=mode == "resume")
            os.environ[PAUSE_ENV] = "30"  # only the write under test pauses, not the marker's
            time.sleep = paused
            getattr(run, sys.argv[1])(rel, *eval(args))
            print("done", flush=True)
        finally:
            os._exit(1)
    print(os.waitpid(pid, 0)[1], flush=True)
"""


def _killed_write(writers: subprocess.Popen, run_dir: Path, mode: str, rel: str, args: str) -> None:
    """Start a write that pauses between temp file and rename, SIGKILL its process in the pause."""
    writers.stdin.write(json.dumps([str(run_dir), mode, rel, args]) + "\n")
    writers.stdin.flush()
    line = writers.stdout.readline()  # the write is in its pause between the fsynced temp file and the rename
    assert line.startswith("paused "), line + (writers.stdout.read() if writers.poll() is not None else "")
    assert list(run_dir.rglob(f"*{TEMP_SUFFIX}"))
    os.kill(int(line.split()[1]), signal.SIGKILL)
    status = int(writers.stdout.readline())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


@pytest.mark.parametrize("method, rel, old_args, new_args, read", [
    ("write_text", "config.json", "['{\"v\": 1}']", "['{\"v\": 2}' * 100000]", lambda p: p.read_text()),
    ("write_json", "metrics.json", "[{'v': 1}]", "[{'v': list(range(100000))}]", lambda p: read_json(p)),
    ("save_torch", "weights.pt", "[{'w': __import__('torch').ones(3)}]",
     "[{'w': __import__('torch').zeros(300000)}]",
     lambda p: __import__("torch").load(p, weights_only=True)["w"].tolist()),
])
@pytest.mark.slow  # processes killed mid-write
def test_sigkill_during_a_write_leaves_the_previous_version_or_none(tmp_path, method, rel, old_args, new_args,
                                                                    read):
    run_dir = tmp_path / "run"
    writers = subprocess.Popen([sys.executable, "-c", _KILL_WRITER, method], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        # killed during the first write: no file at all, not a truncated one
        _killed_write(writers, run_dir, "new", rel, old_args)
        assert not (run_dir / rel).exists()
        # a complete first version, then a kill during the second: the first version is intact
        with RunDir.create(run_dir, resume=True) as run:
            assert not list(run_dir.rglob(f"*{TEMP_SUFFIX}"))  # resume cleared the killed writer's temp file
            getattr(run, method)(rel, *eval(old_args))
        before = read(run_dir / rel)
        _killed_write(writers, run_dir, "resume", rel, new_args)
        assert read(run_dir / rel) == before
    finally:
        writers.kill()
        writers.wait()
    with RunDir.create(run_dir, resume=True):  # and the run is resumable: the lock died with the writer
        pass
