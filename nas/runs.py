"""Run folders: one exclusive writer, atomic files, no overwriting by accident, no writing through links.

Every command that writes results (train, export, search, dnas) writes them through a `RunDir`:

- the folder holds a marker `.nas-run` (JSON: kind, created, pid), so `--overwrite` can tell a run folder
  from a user's own folder and never clears the latter;
- an exclusive `fcntl.flock` on `.lock` (which holds the writer's pid) keeps a second writer out; the kernel
  drops the lock when the process dies, so a killed run can be resumed;
- every file is written to a temp file in the same folder, flushed, fsynced and renamed over the target,
  then the folder is fsynced: a kill leaves the previous complete version or none, never a truncated file;
- paths inside the folder are checked part by part: no absolute paths, no "..", no symlink on the way.

User mistakes (an existing run, a folder in use, a path under a file, a read-only disk) are one-line
`SpecError`s; this module is self-contained (standard library and `nas.dsl.errors`) on purpose.
"""
from __future__ import annotations

import errno
import fcntl
import json
import math
import numbers
import os
import secrets
import shutil
import stat
import time
from pathlib import Path, PurePath
from typing import Any, Callable

from nas.dsl.errors import SpecError

MARKER = ".nas-run"
LOCK = ".lock"
TEMP_SUFFIX = ".nas-tmp"
# Test hook: seconds to sleep between writing a temp file and renaming it, to widen the window a kill can hit.
PAUSE_ENV = "NAS_RUNS_PAUSE_BEFORE_RENAME"
JSON_LIMIT = 64 * 1024 * 1024  # read_json refuses bigger files: nothing we write comes close


class RunDir:
    """An open run folder, locked for writing until `close()` (or the end of a `with` block)."""

    def __init__(self, path: Path, lock_fd: int, kind: str):
        self.path = path
        self.kind = kind
        self._lock_fd: int | None = lock_fd

    # -- opening ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, kind: str = "train", resume: bool = False,
               overwrite: bool = False) -> "RunDir":
        """Open a new run folder (or resume / overwrite an existing run) and lock it; see the module doc."""
        if resume and overwrite:
            raise SpecError("--resume and --overwrite exclude each other", str(path))
        path = Path(path)
        where = str(path)
        _check_folder_path(path, resume)
        _refuse_foreign(path, resume, overwrite)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise SpecError("a file is in the way of the run folder", where,
                            "choose a folder path that is not a file or under one") from None
        except NotADirectoryError:
            raise SpecError("the run folder would be under a file", where, "choose another folder") from None
        except OSError as err:
            raise _os_error(err, where) from None
        lock_fd = _lock(path)
        try:
            entries = set(os.listdir(path)) - {LOCK}
            if resume:
                marker = _read_marker(path)
                if marker.get("kind") != kind:
                    raise SpecError(f"this is a '{marker.get('kind')}' run folder, not a '{kind}' one", where,
                                    "resume it with the command that wrote it")
                _remove_temp_files(path)
            else:
                if entries and not overwrite:
                    raise SpecError("the run folder exists and is not empty", where,
                                    "pass --resume to continue it, --overwrite to replace it, or another folder")
                if entries:  # overwrite: _refuse_foreign let only a run folder through; check again under lock
                    _read_marker(path)
                    _clear(path)
                _write_atomic(path / MARKER, _json_text({"kind": kind, "created": _now(), "pid": os.getpid()}))
        except BaseException:
            _unlock(lock_fd)
            raise
        return cls(path, lock_fd, kind)

    def close(self) -> None:
        """Release the lock; later writes are refused."""
        if self._lock_fd is not None:
            _unlock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close must not keep the folder locked for the process's life
        self.close()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, kind={self.kind!r}, open={self._lock_fd is not None})"

    # -- paths --------------------------------------------------------------------------------------------
    def file(self, rel: str | os.PathLike) -> Path:
        """The path of `rel` inside the folder, its parent folders made; refuses anything that could leave it."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self!r} is closed")
        parts = PurePath(rel).parts
        where = str(self.path / rel)
        if not parts or PurePath(rel).is_absolute() or ".." in parts:
            raise SpecError("a run file must be a relative path inside the run folder", where)
        if parts[0] in (MARKER, LOCK):
            raise SpecError(f"'{parts[0]}' is the run folder's own bookkeeping file", where)
        current = self.path
        for i, part in enumerate(parts):
            current = current / part
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                if i < len(parts) - 1:
                    try:
                        os.mkdir(current)
                    except FileExistsError:  # made by someone else meanwhile: check it on the next round
                        info = os.lstat(current)
                    except OSError as err:
                        raise _os_error(err, str(current)) from None
                    else:
                        continue
                else:
                    continue
            except OSError as err:
                raise _os_error(err, str(current)) from None
            if stat.S_ISLNK(info.st_mode):
                raise SpecError("refusing to write through a symbolic link", str(current),
                                "remove the link; run files are written only inside the run folder")
            if i < len(parts) - 1 and not stat.S_ISDIR(info.st_mode):
                raise SpecError("a file is in the way of a run subfolder", str(current))
            if i == len(parts) - 1 and stat.S_ISDIR(info.st_mode):
                raise SpecError("a folder is in the way of a run file", str(current))
        return current

    # -- writing ------------------------------------------------------------------------------------------
    def write_bytes(self, rel: str | os.PathLike, data: bytes) -> Path:
        target = self.file(rel)
        _write_atomic(target, data)
        return target

    def write_text(self, rel: str | os.PathLike, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str | os.PathLike, obj: Any) -> Path:
        """Strict JSON: NaN and infinities are written as null, never as bare NaN."""
        return self.write_bytes(rel, _json_text(obj))

    def save_torch(self, rel: str | os.PathLike, obj: Any) -> Path:
        import torch

        target = self.file(rel)
        _write_atomic(target, lambda f: torch.save(obj, f))
        return target

    def append_line(self, rel: str | os.PathLike, line: str) -> Path:
        """Append one line (a log); it is fsynced, and a reader should tolerate a torn last line."""
        target = self.file(rel)
        data = (" ".join(line.splitlines()) + "\n").encode("utf-8")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise _os_error(err, str(target)) from None
        return target


# -- reading ------------------------------------------------------------------------------------------------
def read_json(path: str | os.PathLike, limit: int = JSON_LIMIT) -> Any:
    """Strict JSON from a regular file: a one-line SpecError for a missing, odd, huge, truncated or bad file."""
    where = str(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError("not a regular file", where, "give a JSON file")
        if info.st_size > limit:
            raise SpecError(f"file too large ({info.st_size} bytes, limit {limit})", where)
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as err:
        raise _os_error(err, where) from None
    if len(raw) > limit:
        raise SpecError(f"file too large (over {limit} bytes)", where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"not UTF-8 text (byte {err.start})", where) from None

    def refuse_constant(name: str):
        raise SpecError(f"'{name}' is not strict JSON", where, "numbers must be finite; use null")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as err:
        hint = "the file is empty" if not text.strip() else "the file may be truncated or not JSON"
        raise SpecError(f"bad JSON: {err.msg}", f"{where}:{err.lineno}:{err.colno}", hint) from None
    except RecursionError:
        raise SpecError("JSON nested too deeply", where) from None


def is_within(child: str | os.PathLike, parent: str | os.PathLike) -> bool:
    """True when `child` is `parent` or lies inside it, after resolving links and '..'."""
    child_path, parent_path = Path(child).resolve(), Path(parent).resolve()
    return child_path == parent_path or parent_path in child_path.parents


# -- helpers ------------------------------------------------------------------------------------------------
def _check_folder_path(path: Path, resume: bool) -> None:
    where = str(path)
    if path.is_symlink():
        raise SpecError("the run folder is a symbolic link", where, "give the real folder")
    if path.exists() and not path.is_dir():
        raise SpecError("not a folder", where, "the run folder path is a file; choose another path")
    if resume and not path.is_dir():
        raise SpecError("no such run folder", where, "--resume needs a folder an earlier run wrote")


def _refuse_foreign(path: Path, resume: bool, overwrite: bool) -> None:
    """Never touch (not even with a lock file) an existing folder that is not a run folder."""
    if not path.is_dir():
        return
    try:
        entries = set(os.listdir(path)) - {LOCK}
    except OSError as err:
        raise _os_error(err, str(path)) from None
    if MARKER in entries:
        return
    if resume:
        raise SpecError("not a run folder (no .nas-run marker)", str(path), "resume a folder a nas command wrote")
    if entries and overwrite:
        raise SpecError("not a run folder (no .nas-run marker); --overwrite only replaces run folders",
                        str(path), "remove the folder yourself or choose another one")
    if entries:
        raise SpecError("the folder exists, is not empty and is not a run folder", str(path),
                        "choose a new or empty folder")


def _lock(path: Path) -> int:
    lock_path = path / LOCK
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise SpecError("the lock file is a symbolic link", str(lock_path), "remove it") from None
        raise _os_error(err, str(path)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        who = f"pid {holder}" if holder.isdigit() else "another process"
        raise SpecError(f"the run folder is in use by {who}", str(path),
                        "wait for it to finish or choose another folder") from None
    except OSError as err:
        os.close(fd)
        raise _os_error(err, str(lock_path)) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as err:
        _unlock(fd)
        raise _os_error(err, str(lock_path)) from None
    return fd


def _unlock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_marker(path: Path) -> dict:
    marker = path / MARKER
    if marker.is_symlink() or not marker.is_file():
        raise SpecError("not a run folder (no .nas-run marker)", str(path), "use a folder a nas command wrote")
    data = read_json(marker, limit=64 * 1024)
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        raise SpecError("damaged run marker (expected a JSON object with a 'kind')", str(marker))
    return data


def _clear(path: Path) -> None:
    """Empty a run folder except its lock and marker; the marker goes last, so a kill leaves a run folder."""
    for name in os.listdir(path):
        if name in (LOCK, MARKER):
            continue
        entry = path / name
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError as err:
            raise _os_error(err, str(entry)) from None


def _remove_temp_files(path: Path) -> None:
    """Temp files a killed writer left behind; the files they were meant to replace are still whole."""
    for temp in path.rglob(f"*{TEMP_SUFFIX}"):
        if temp.is_file() and not temp.is_symlink():
            temp.unlink(missing_ok=True)


def _write_atomic(target: Path, data: bytes | Callable[[Any], None]) -> None:
    """Temp file beside the target, flush + fsync, rename over it, fsync the folder."""
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            if callable(data):
                with os.fdopen(os.dup(fd), "wb") as f:
                    data(f)
            else:
                _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        pause = os.environ.get(PAUSE_ENV)
        if pause:
            time.sleep(float(pause))
        os.replace(temp, target)
        _fsync_folder(target.parent)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise _os_error(err, str(target)) from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_text(obj: Any) -> bytes:
    return (json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n").encode("utf-8")


def _finite(obj: Any) -> Any:
    """JSON-ready copy: NaN/inf become None, NumPy and torch scalars plain numbers, tuples lists."""
    if isinstance(obj, (bool, str)) or obj is None:
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # a 0-d tensor or array
        return _finite(obj.item())
    return obj  # json.dumps decides; an unknown type is an internal bug and should say so


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _os_error(err: OSError, where: str) -> SpecError:
    """A file-system error as a one-line user error: the reason, the path, and what to check."""
    hints = {errno.EACCES: "check the permissions", errno.EPERM: "check the permissions",
             errno.EROFS: "the file system is read-only", errno.ENOSPC: "free some disk space",
             errno.ENOTDIR: "a part of the path is a file", errno.EISDIR: "a folder is in the way"}
    reason = err.strerror or type(err).__name__
    return SpecError(reason[:1].lower() + reason[1:], where, hints.get(err.errno or 0))
