"""A process pool for CPU-bound work (extraction, feed parsing) that survives crashed or
stuck workers.

One hostile page must not take the run down: a worker that dies (BrokenProcessPool) or
exceeds the extraction timeout is replaced and only that page becomes a reject.

Workers also exit when the process that created the pool dies, however it dies (kill -9
included): an idle worker blocks on its call queue, whose write end it holds itself, so it
would never see EOF and would outlive the run. Once the workers are gone, the forkserver
and the resource tracker see EOF on their pipes (the workers held the last write ends) and
exit on their own.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

from ingest.extract import ExtractError, extract_page

log = logging.getLogger(__name__)
T = TypeVar("T")


class ExtractorPool:
    def __init__(self, workers: int, timeout: float, start_method: str = "forkserver") -> None:
        self.workers = workers
        self.timeout = timeout
        # forkserver: workers never inherit the parent's threads and locks (fork-safety),
        # and preloading trafilatura makes each new worker cheap.
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(["ingest.extract"])
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                if multiprocessing.current_process().daemon:
                    # A daemonic host (Celery's prefork pool) may not have children: work
                    # in this process; scale out with more worker slots instead.
                    log.warning("daemonic process: extraction runs in-process, one page at a time")
                    self._pool = _InProcess()  # type: ignore[assignment]
                else:
                    self._pool = ProcessPoolExecutor(
                        self.workers,
                        mp_context=self._ctx,
                        initializer=_exit_with_owner,
                        initargs=(os.getpid(),),
                    )
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor, kill: bool) -> None:
        with self._lock:
            if self._pool is not broken:
                return
            self._pool = None
        if kill:
            for proc in list(getattr(broken, "_processes", {}).values()):
                proc.kill()
        broken.shutdown(wait=False, cancel_futures=True)

    def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        """Run fn(*args) in a worker; a dead or stuck worker costs only this call."""
        for _attempt in range(2):
            pool = self._get()
            try:
                future = pool.submit(fn, *args)
                return future.result(timeout=self.timeout)
            except BrokenProcessPool:
                log.warning("a worker process died; restarting the pool (%s)", what)
                self._replace(pool, kill=False)
            except FuturesTimeout:
                log.warning("%s exceeded %.0fs; restarting the pool", what, self.timeout)
                self._replace(pool, kill=True)
                raise ExtractError(
                    "extract_timeout", f"processing took longer than {self.timeout:.0f}s"
                ) from None
        raise ExtractError("extract_crashed", f"the worker process crashed on {what}")

    def start(self) -> None:
        """Start every worker now. Call it before starting threads when using fork: the
        children then inherit no thread's half-held lock."""
        with _stop_signals_held():
            pool = self._get()
            for future in [pool.submit(abs, 0) for _ in range(self.workers)]:
                future.result(timeout=self.timeout)

    def extract(self, html: str, url: str) -> dict[str, Any]:
        return self.call(extract_page, html, url, what=url)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_ORPHANED = 70  # exit status of a worker whose owner died


@contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Deliver SIGTERM/SIGINT only once the workers are up. A stop while a worker is
    half-spawned (the forkserver is still importing trafilatura) lets this process exit
    under the worker's handshake, which then fails loudly on a lock that no longer exists.
    Only the main thread can swap handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    held = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, lambda s, f: caught.append((s, f))) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig, frame in caught[:1]:  # now act on it as if it arrived just now
            handler = previous[sig]
            if callable(handler):
                handler(sig, frame)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


def _exit_with_owner(owner_pid: int) -> None:
    """Worker initializer: exit as soon as the pool's owner dies.

    A thread, not prctl(PR_SET_PDEATHSIG): under forkserver the worker's parent is the
    forkserver, and under fork/spawn the signal fires when the parent *thread* that
    started the worker ends (the executor also starts workers from its manager thread).
    """
    threading.Thread(
        target=_watch_owner, args=(owner_pid, os.getppid() == owner_pid), daemon=True
    ).start()


def _watch_owner(owner_pid: int, is_parent: bool) -> None:
    """Wait for owner_pid to exit, then end this worker without cleanup (os._exit)."""
    try:
        pidfd = os.pidfd_open(owner_pid)  # Linux >= 5.3: readable once the process exits
    except ProcessLookupError:
        os._exit(_ORPHANED)
    except (AttributeError, OSError):  # no pidfd: not Linux, old kernel, seccomp
        while _owner_alive(owner_pid, is_parent):
            time.sleep(1.0)
    else:
        if not is_parent or os.getppid() == owner_pid:  # the pid was not reused meanwhile
            poller = select.poll()  # not select(): a forked worker may inherit fds >= 1024
            poller.register(pidfd, select.POLLIN)
            poller.poll()
    os._exit(_ORPHANED)


def _owner_alive(owner_pid: int, is_parent: bool) -> bool:
    """The polling fallback: a dead parent reparents us; otherwise probe with signal 0."""
    if is_parent:
        return os.getppid() == owner_pid
    try:
        os.kill(owner_pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or reused by another user
        return False
    return True


class _InProcess:
    """The executor interface, run serially in the calling thread (no child processes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:  # one page at a time: trafilatura holds the GIL anyway
            try:
                future.set_result(fn(*args))
            except Exception as exc:
                future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass
