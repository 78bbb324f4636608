"""Real services on loopback for tests and benchmarks: Redis (the Debian package's
redis-server), the WebSub receiver as `ingest receive`, and Airflow's components as
separate processes (so one of them can be stopped and started again mid-test)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port}")


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway Redis without persistence; yields its URL."""
    server = shutil.which("redis-server")
    if not server:
        raise RuntimeError("redis-server is missing (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in its own session (stop() ends it and everything it started)."""
    return subprocess.Popen(cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip


def stop(procs: list[subprocess.Popen], timeout: float = 20) -> None:
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class Receiver:
    """`ingest receive` on a free loopback port, restartable."""

    def __init__(self, store: str, doorbell: str | None, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [str(Path(sys.executable).with_name("ingest")), "receive", "--store", store,
                    "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        if doorbell:
            self.cmd += ["--doorbell", doorbell]
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = start(self.cmd, self.env, self.log)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])
            self.proc = None


class AirflowProcesses:
    """api-server, scheduler, dag-processor and triggerer, each its own process (the
    LocalExecutor runs tasks under the scheduler), with `restart(name)`."""

    COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

    def __init__(self, env: dict[str, str], logs: Path, api_port: int) -> None:
        self.airflow = str(Path(sys.executable).with_name("airflow"))
        self.env, self.logs, self.api_port = env, logs, api_port
        self.procs: dict[str, subprocess.Popen] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def migrate(self) -> None:
        subprocess.run([self.airflow, "db", "migrate"], env=self.env, check=True,
                       capture_output=True, timeout=600)  # fmt: skip

    def start(self, name: str) -> None:
        cmd = [self.airflow, name]
        if name == "api-server":
            cmd += ["--port", str(self.api_port)]
        self.procs[name] = start(cmd, self.env, self.logs / f"{name}.log")

    def start_all(self) -> None:
        for name in self.COMPONENTS:
            self.start(name)
        wait_port(self.api_port, timeout=180)

    def stop(self, name: str) -> None:
        stop([self.procs.pop(name)])

    def restart(self, name: str) -> None:
        self.stop(name)
        self.start(name)

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([self.airflow, *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    def stop_all(self) -> None:
        stop(list(self.procs.values()))
        self.procs.clear()

    def log_tail(self, chars: int = 3000) -> str:
        out = []
        for name in self.COMPONENTS:
            path = self.logs / f"{name}.log"
            if path.exists():
                out.append(f"--- {name}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(out)
