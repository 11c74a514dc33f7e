"""Real services for the cluster tests and bench/scale.py: a Ray cluster of separate `ray start` processes,
and a PostgreSQL server in a temp folder. Each is stopped by killing only the process groups it started."""
from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group we made for `proc` (it holds every process the node started), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                proc.poll()
                return
            proc.poll()  # reap the leader, so that the group can empty
            time.sleep(0.2)


class RayCluster:
    """A head and further nodes, each a `ray start --block` in its own process group, with token
    authentication (a fresh token in the environment, ~/.ray untouched)."""

    def __init__(self, cpus_per_node: int = 1, token: str | None = None):
        self.cpus = cpus_per_node
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="nasray", dir="/tmp"))  # short: Ray's socket paths are limited
        self.env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                    "RAY_AUTH_TOKEN": token or secrets.token_hex(32)}
        self.nodes: dict[str, subprocess.Popen] = {}

    def _start(self, name: str, args: list[str], timeout: float) -> None:
        log = open(self.temp / f"{name}.log", "w")
        self.nodes[name] = subprocess.Popen([str(RAY), "start", "--block", f"--num-cpus={self.cpus}", *args],
                                            env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in (self.temp / f"{name}.log").read_text():
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {name} did not start:\n{(self.temp / f'{name}.log').read_text()}")
            time.sleep(0.5)

    def start(self, nodes: int = 2, timeout: float = 120.0) -> "RayCluster":
        self._start("head", ["--head", f"--port={self.port}", "--include-dashboard=false",
                             f"--temp-dir={self.temp / 'ray'}"], timeout)
        for i in range(1, nodes):
            self._start(f"node{i}", [f"--address={self.address}"], timeout)
        return self

    def kill(self, name: str) -> None:
        """The node dies at once (SIGKILL to its whole process group: raylet, object store, workers)."""
        try:
            os.killpg(self.nodes[name].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.nodes[name].wait()

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):  # a throwaway cluster: no need to wait long for a clean exit
            _stop_group(self.nodes.pop(name), grace=2.0)
        shutil.rmtree(self.temp, ignore_errors=True)


def postgres_bin() -> Path | None:
    """Debian's versioned folder of the PostgreSQL server binaries, newest first; None when absent."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    """A throwaway PostgreSQL cluster: initdb in a temp folder owned by `postgres` (the server refuses root),
    a free local port, the socket in the same folder; `url` names a fresh database."""

    def __init__(self, user: str = "postgres", fsync: bool = False):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin")
        self.user = user
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="naspg", dir="/tmp"))
        self.started = False
        self.fsync = fsync  # off for tests (durability is not under test); on for a fair benchmark

    def _as_user(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self, database: str = "nas") -> "Postgres":
        if os.geteuid() == 0:
            shutil.chown(self.dir, self.user, self.user)
        self._as_user("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres", "--no-sync")
        fsync = "on" if self.fsync else "off"
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync={fsync}"
        self._as_user("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o", options,
                      "start")
        self.started = True
        self._as_user("createdb", "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", database)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        return self

    def stop(self) -> None:
        if self.started:
            self._as_user("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)
