"""A worker that dies or hangs costs one call, never the run."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import psutil
import pytest

from ingest.errors import ExtractError
from ingest.extractor_pool import CALL_PIPE_BYTES, ExtractorPool


def test_crashed_worker_costs_only_that_call() -> None:
    pool = ExtractorPool(workers=2, timeout=30)
    try:
        with pytest.raises(ExtractError) as err:
            pool.call(os._exit, 3, what="hostile page")
        assert err.value.reason == "extract_crashed"
        page = (
            "<html><body><article><p>" + "Real words here. " * 40 + "</p></article></body></html>"
        )
        assert pool.extract(page.encode(), "text/html", "https://n.example/a")["word_count"] >= 40
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
        queue.put(pool.extract(page.encode(), "text/html", "https://n.example/d")["word_count"])
        pool.close()

    proc = ctx.Process(target=child, daemon=True)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0 and queue.get(timeout=5) >= 40


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    return depth


def _called_deep(levels: int, fn: Callable[[], None]) -> None:
    return fn() if levels == 0 else _called_deep(levels - 1, fn)


def test_forked_workers_do_not_keep_the_callers_stack() -> None:
    """A host that starts the pool from deep in its stack (an Airflow task runner) must not
    leave that stack under the workers' own: CPython maps and unmaps stack chunks as calls
    cross their edges, and a deep inherited stack put a worker's hot loop on an edge."""
    pool = ExtractorPool(workers=2, timeout=30, start_method="fork")
    try:
        _called_deep(300, pool.start)
        depths = {pool.call(_stack_depth, what="depth") for _ in range(4)}
        assert max(depths) < 60, depths
    finally:
        pool.close()


_OWNER = """
import sys, time
import psutil
from ingest.extractor_pool import CALL_PIPE_BYTES, ExtractorPool

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


# A job the worker's own timer cannot stop: SIGALRM blocked, as in C code that never
# returns to the interpreter. Only the parent's grace-period kill ends it.
_STUCK = "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n"
_STUCK += "time.sleep(60)"


def _concurrently(pool: ExtractorPool, jobs: dict[str, tuple]) -> dict[str, object]:
    """Run every job from its own thread (as fetch threads do); name -> result or error."""
    out: dict[str, object] = {}

    def one(name: str, job: tuple) -> None:
        try:
            out[name] = pool.call(*job, what=name)
        except ExtractError as exc:
            out[name] = exc

    threads = [threading.Thread(target=one, args=item) for item in jobs.items()]
    for i, thread in enumerate(threads):
        thread.start()
        if i == 0:
            time.sleep(0.2)  # the first job is in a worker before the others queue
    for thread in threads:
        thread.join(120)
    return out


def test_waiting_for_a_worker_does_not_count_against_the_timeout() -> None:
    """One worker, a 2 s timeout, four 0.8 s jobs at once: the last one waits 2.4 s for
    its turn but runs 0.8 s, so none of them timed out."""
    pool = ExtractorPool(workers=1, timeout=2.0)
    try:
        pool.start()
        results = _concurrently(pool, {f"page{i}": (time.sleep, 0.8) for i in range(4)})
    finally:
        pool.close()
    assert results == {f"page{i}": None for i in range(4)}


def test_a_job_waiting_in_the_pool_is_not_taken_for_stuck() -> None:
    """One worker, a 1 s timeout and 0.2 s grace; two 0.8 s jobs at once: the second waits
    in the pool behind the first and is done 1.6 s after it was submitted, past one
    timeout and the grace, yet neither is rejected and the worker is never replaced."""
    pool = ExtractorPool(workers=1, timeout=1.0, grace=0.2)
    try:
        pool.start()
        before = pool.call(os.getpid, what="pid")
        started = time.monotonic()
        results = _concurrently(pool, {f"page{i}": (time.sleep, 0.8) for i in range(2)})
        elapsed = time.monotonic() - started
        after = pool.call(os.getpid, what="pid")
    finally:
        pool.close()
    assert results == {"page0": None, "page1": None}
    assert before == after
    assert elapsed >= 1.6  # they did run one after the other


def test_a_waiting_page_fits_in_the_pipe_to_the_workers() -> None:
    pool = ExtractorPool(workers=1, timeout=30)
    try:
        page = b"<html><body><p>" + b"x" * 300_000 + b"</p></body></html>"
        assert pool.call(len, page, what="big page") == len(page)
        writer = pool._pool._call_queue._writer  # type: ignore[union-attr]
        assert fcntl.fcntl(writer.fileno(), fcntl.F_GETPIPE_SZ) >= CALL_PIPE_BYTES
    finally:
        pool.close()


def test_an_overrun_the_worker_stops_itself_keeps_the_worker() -> None:
    pool = ExtractorPool(workers=1, timeout=1.0)
    try:
        before = pool.call(os.getpid, what="pid")
        with pytest.raises(ExtractError) as err:
            pool.call(time.sleep, 30, what="slow page")
        after = pool.call(os.getpid, what="pid")
    finally:
        pool.close()
    assert err.value.reason == "extract_timeout" and not err.value.transient
    assert before == after  # no process was killed for it


def test_only_the_job_that_overran_is_rejected() -> None:
    """The stuck job makes the parent kill and replace the pool; the jobs that shared the
    killed pool are submitted again and succeed, none cancelled or rejected."""
    pool = ExtractorPool(workers=2, timeout=1.0, grace=0.5)
    try:
        pool.start()
        jobs: dict[str, tuple] = {"hostile": (exec, _STUCK)}
        jobs |= {f"page{i}": (time.sleep, 0.4) for i in range(6)}
        results = _concurrently(pool, jobs)
    finally:
        pool.close()
    hostile = results.pop("hostile")
    assert isinstance(hostile, ExtractError) and hostile.reason == "extract_timeout"
    assert results == {f"page{i}": None for i in range(6)}


def test_a_crash_costs_only_the_job_that_crashed() -> None:
    """Nobody knows whose job killed a worker: every job the crash took down runs again
    alone, and only the one that crashes alone is rejected."""
    pool = ExtractorPool(workers=2, timeout=30)
    try:
        pool.start()
        jobs: dict[str, tuple] = {
            "hostile": (exec, "import os, time\ntime.sleep(0.3)\nos._exit(9)")
        }
        jobs |= {f"page{i}": (time.sleep, 0.5) for i in range(4)}
        results = _concurrently(pool, jobs)
    finally:
        pool.close()
    hostile = results.pop("hostile")
    assert isinstance(hostile, ExtractError) and hostile.reason == "extract_crashed"
    assert results == {f"page{i}": None for i in range(4)}


def test_abort_ends_jobs_in_flight_at_once_as_transient() -> None:
    pool = ExtractorPool(workers=1, timeout=60)
    pool.start()
    results: dict[str, object] = {}
    worker = threading.Thread(
        target=lambda: results.update(_concurrently(pool, {"long": (time.sleep, 50)}))
    )
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    pool.abort()
    worker.join(10)
    pool.close()
    assert time.monotonic() - started < 5
    error = results["long"]
    assert isinstance(error, ExtractError) and error.reason == "aborted" and error.transient
    with pytest.raises(ExtractError, match="aborted"):
        pool.call(abs, 1, what="after abort")
