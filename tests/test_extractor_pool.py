"""A worker that dies or hangs costs one call, never the run."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import psutil
import pytest

from ingest.extract import ExtractError
from ingest.extractor_pool import ExtractorPool

pytestmark = pytest.mark.integration


def test_crashed_worker_costs_only_that_call() -> None:
    pool = ExtractorPool(workers=2, timeout=30)
    try:
        with pytest.raises(ExtractError) as err:
            pool.call(os._exit, 3, what="hostile page")
        assert err.value.reason == "extract_crashed"
        page = (
            "<html><body><article><p>" + "Real words here. " * 40 + "</p></article></body></html>"
        )
        assert pool.extract(page, "https://n.example/a")["word_count"] >= 40
    finally:
        pool.close()


def test_stuck_worker_times_out_and_is_replaced() -> None:
    pool = ExtractorPool(workers=1, timeout=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(ExtractError) as err:
            pool.call(time.sleep, 30, what="endless page")
        assert err.value.reason == "extract_timeout"
        assert time.monotonic() - started < 10
        assert pool.call(abs, -5, what="next") == 5
    finally:
        pool.close()


def test_daemonic_host_extracts_in_process() -> None:
    """Celery's prefork workers are daemonic and may not start children."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child() -> None:
        pool = ExtractorPool(workers=2, timeout=30, start_method="fork")
        pool.start()
        page = "<html><body><article><p>" + "Daemon words. " * 40 + "</p></article></body></html>"
        queue.put(pool.extract(page, "https://n.example/d")["word_count"])
        pool.close()

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0 and queue.get(timeout=5) >= 40


_OWNER = """
import sys, time
import psutil
from ingest.extractor_pool import ExtractorPool

pool = ExtractorPool(workers=2, timeout=60, start_method=sys.argv[1])
pool.start()
me = psutil.Process()
print(me.pid, *[child.pid for child in me.children(recursive=True)], flush=True)
time.sleep(600)
"""


def _running(proc: psutil.Process) -> bool:
    """Alive and not a zombie: a reparented zombie may wait long for a reaper (PID 1)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.integration
@pytest.mark.parametrize("start_method", ["forkserver", "fork", "spawn"])
def test_helpers_exit_when_owner_is_killed(start_method: str) -> None:
    """kill -9 of the run must not leave workers, forkserver or resource tracker behind."""
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, start_method], stdout=subprocess.PIPE, text=True
    )
    helpers: list[psutil.Process] = []
    try:
        assert owner.stdout is not None
        ready, _, _ = select.select([owner.stdout], [], [], 60)
        assert ready, "the owner never started its pool"
        pids = [int(pid) for pid in owner.stdout.readline().split()]
        assert pids and pids[0] == owner.pid
        helpers = [psutil.Process(pid) for pid in pids[1:]]
        assert len(helpers) >= 2  # at least the two workers

        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 10
        while any(map(_running, helpers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [f"{p.pid}: {' '.join(p.cmdline())[-60:]}" for p in helpers if _running(p)]
        assert not survivors, f"outlived their owner: {survivors}"
    finally:
        owner.kill()
        owner.wait()
        for proc in helpers:
            if _running(proc):
                proc.kill()
