"""A process pool for CPU-bound work (extraction, feed parsing) that survives crashed or
stuck workers.

One hostile page must not cost any other page. So:
- at most two jobs per worker are in the pool at once (a semaphore in front of it): one
  running and one waiting, so a worker starts its next job as soon as it has sent a result
  instead of waiting for this process's threads to hand it one;
- a worker stops its own job when the timeout passes (an interval timer started when the
  job starts, so the timeout counts the job's own run time only), so an ordinary overrun
  costs only that job and no process;
- a job stuck where the timer cannot reach (C code holding on) is caught by the parent a
  grace period after the longest it can take, waiting included (two timeouts): the pool
  is killed and replaced, that job is the one rejected, and every other job the
  replacement cut short is submitted again;
- when a worker dies, nobody knows whose job killed it: each job it took down runs again
  alone, and a job that crashes a worker while running alone is the one rejected.

Workers also exit when the process that created the pool dies, however it dies (kill -9
included): an idle worker blocks on its call queue, whose write end it holds itself, so it
would never see EOF and would outlive the run. Once the workers are gone, the forkserver
and the resource tracker see EOF on their pipes (the workers held the last write ends) and
exit on their own.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from ingest.errors import ExtractError

log = logging.getLogger(__name__)
T = TypeVar("T")

# Imported by the forkserver before any worker forks. Warming the extractor's libraries
# (ingest.warmup) waits until a run has pages to extract (`ExtractorPool.warm`): done here,
# it delayed the run's first feed parse, and so its first page request, by 0.3 s, for no
# shorter run.
PRELOAD = ["ingest.extract"]

# Jobs waiting in the pool per worker. Without one, a worker idled 2-3 ms between pages
# while the parent's threads handed over the next (6% of its time on the real-page corpus).
QUEUED_PER_WORKER = 1
# The pipe to the workers: room for a waiting page (1 MiB is what Linux lets any process ask).
CALL_PIPE_BYTES = 1 << 20
# A job cut short by a replacement it did not cause runs again; this bounds the loop if
# replacements never stop (then the job is a transient failure: the next run retries it).
MAX_SUBMITS = 5
# How long after the timeout the parent waits for a worker that did not stop its own job.
GRACE_SECONDS = 5.0


class ExtractorPool:
    def __init__(
        self,
        workers: int,
        timeout: float,
        start_method: str = "forkserver",
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.workers = workers
        self.timeout = timeout
        self.grace = grace
        # forkserver: workers never inherit the parent's threads and locks (fork-safety),
        # and preloading trafilatura makes each new worker cheap.
        self.start_method = start_method
        self._ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._ctx.set_forkserver_preload(PRELOAD)
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._slot_count = workers * (1 + QUEUED_PER_WORKER)
        self._slots = threading.BoundedSemaphore(self._slot_count)
        # A job starts within QUEUED_PER_WORKER timeouts (every job ahead of it is running or
        # waiting, each ended by its worker's timer) and then runs for one at most.
        self._longest = (1 + QUEUED_PER_WORKER) * timeout
        self._solo = threading.Lock()  # one job at a time takes every slot
        self._replaced: weakref.WeakSet[Any] = weakref.WeakSet()  # pools killed on purpose
        self._aborted = False
        self._warming = False

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._aborted:
                raise ExtractError("aborted", "the run is stopping", transient=True)
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
                    _widen_call_pipe(self._pool)
            return self._pool

    def _replace(self, broken: ProcessPoolExecutor, kill: bool) -> None:
        with self._lock:
            if kill:
                self._replaced.add(broken)
            if self._pool is not broken:
                return
            self._pool = None
        if kill:
            _kill_workers(broken)
        broken.shutdown(wait=False, cancel_futures=True)

    @contextmanager
    def _turn(self, solo: bool) -> Iterator[None]:
        """A slot in the pool; `solo` waits until the job can run with no other job."""
        taken = 0
        try:
            if solo:
                with self._solo:
                    for _ in range(self._slot_count):
                        self._slots.acquire()
                        taken += 1
            else:
                self._slots.acquire()
                taken = 1
            yield
        finally:
            for _ in range(taken):
                self._slots.release()

    def call(self, fn: Callable[..., T], *args: Any, what: str) -> T:
        """Run fn(*args) in a worker; a dead or stuck worker costs only the job that
        caused it. Raises ExtractError for this job's own timeout or crash."""
        solo = False
        for _submit in range(MAX_SUBMITS):
            with self._turn(solo):
                pool = self._get()
                try:
                    if isinstance(pool, ProcessPoolExecutor):
                        future = pool.submit(_timed_call, self.timeout, fn, *args)
                    else:
                        future = pool.submit(fn, *args)
                    return future.result(timeout=self._longest + self.grace)
                except FuturesTimeout:
                    log.warning("%s exceeded %.0fs; restarting the pool", what, self.timeout)
                    self._replace(pool, kill=True)
                    raise ExtractError(
                        "extract_timeout", f"processing took longer than {self.timeout:.0f}s"
                    ) from None
                except (BrokenProcessPool, CancelledError):
                    with self._lock:
                        innocent = pool in self._replaced
                    if self._aborted:
                        raise ExtractError(
                            "aborted", "the run is stopping", transient=True
                        ) from None
                    if innocent:
                        continue  # another job's timeout replaced the pool: run again
                    self._replace(pool, kill=False)
                    if solo:
                        raise ExtractError(
                            "extract_crashed", f"the worker process crashed on {what}"
                        ) from None
                    log.warning("a worker process died; %s runs again alone", what)
                    solo = True
        raise ExtractError(
            "extract_interrupted",
            f"the pool was replaced {MAX_SUBMITS} times while {what} waited",
            transient=True,
        )

    def start(self) -> None:
        """fork: start every worker now, before any thread exists, so the children inherit
        no thread's half-held lock, and from a new thread (see `_in_new_thread`).
        forkserver: start the forkserver only (it imports the extractor while this process
        goes on); workers start on first use."""
        if self.start_method == "forkserver":
            start_forkserver()
            return
        with _stop_signals_held():
            _in_new_thread(self._start_workers)

    def _start_workers(self) -> None:
        pool = self._get()
        for future in [pool.submit(abs, 0) for _ in range(self.workers)]:
            future.result(timeout=self.timeout)

    def warm(self) -> None:
        """The run has pages to extract: let the workers warm their extractor now, while
        the first pages are being fetched, instead of on their first page (about 0.3 s of
        each worker's CPU). Once per pool, not waited for, best effort: a warm-up job sent
        to a busy worker goes to the next free one, where it does nothing if that one is
        already warm, and a worker it misses warms on its first page as before. Each job
        takes a free slot or is not sent, so the pool never holds more jobs than it admits.
        A run with no page to fetch never pays for it."""
        with self._lock:
            if self._warming:
                return
            self._warming = True
        try:
            pool = self._get()
        except ExtractError:  # stopping
            return
        if not isinstance(pool, ProcessPoolExecutor):
            return
        for _ in range(self.workers):
            if not self._slots.acquire(blocking=False):
                return  # the pool is busy already: its workers warm on their first page
            try:
                future = pool.submit(_timed_call, self.timeout, _warm_worker)
            except (RuntimeError, BrokenProcessPool):  # shut down or broken meanwhile
                self._slots.release()
                return
            future.add_done_callback(lambda _: self._slots.release())

    def extract(self, body: bytes, content_type: str, url: str) -> dict[str, Any]:
        """Extract a page as fetched: decoding (charset detection included) is per-page
        CPU work too, so it happens in the worker, under the page's timeout."""
        return self.call(_extract_page, body, content_type, url, what=url)

    def abort(self) -> None:
        """Stop now (SIGTERM): kill the workers; every job in flight or still to come
        fails at once as a transient error instead of running to its timeout."""
        with self._lock:
            self._aborted = True
            pool, self._pool = self._pool, None
        if pool is not None:
            _kill_workers(pool)
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _in_new_thread(fn: Callable[[], None]) -> None:
    """Run fn in a new thread and wait for it, re-raising what it raised.

    A forked worker keeps its parent's Python call stack under its own, and CPython 3.11
    grows that stack in 16 KiB chunks that it maps and unmaps as calls cross their edges.
    Forked from deep in a host (Airflow's task runner), a worker's hot loops sat on such
    an edge: two thirds of one worker's time went to mmap and munmap, and a DAG run took
    2.4 times as long as the CLI on the same pages. A new thread starts with an empty
    stack, as a forkserver child does."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised in the caller
            failure.append(exc)

    thread = threading.Thread(target=target, name="start-workers")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _widen_call_pipe(pool: ProcessPoolExecutor) -> None:
    """Let the pipe that carries jobs to the workers hold a whole waiting page.

    Linux pipes hold 64 KiB by default: a 200 KB page then crosses in pieces, and each
    piece waits for this process to be scheduled while the workers hold every core (a
    worker idled about 1 ms a page for it). Best effort: where the pool's queue or the
    call is not there, or the system caps pipes lower, pipes stay as they are."""
    writer = getattr(getattr(pool, "_call_queue", None), "_writer", None)
    if writer is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with suppress(OSError, ValueError):
        fcntl.fcntl(writer.fileno(), fcntl.F_SETPIPE_SZ, CALL_PIPE_BYTES)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.kill()


class _Overran(BaseException):
    """Raised in a worker by its own timer. A BaseException, so the `except Exception` of
    the library being run does not swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Overran()


def start_forkserver() -> None:
    """Start the forkserver now, with the preload the pool uses, without waiting for it:
    it imports trafilatura while the caller does other work."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    forkserver.ensure_running()


def stop_forkserver() -> None:
    """Kill the forkserver this process started, if any: a stop must not wait for it to
    finish importing (it would hold the process's output open until then). Its workers
    follow on their own (`_exit_with_owner`)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # no public handle
    if pid:
        with suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _warm_worker() -> None:
    from ingest.warmup import warm_extractor

    warm_extractor()


def _extract_page(body: bytes, content_type: str, url: str) -> dict[str, Any]:
    """Decode, then ingest.extract.extract_page, imported where it runs: the workers have it
    preloaded, and the run's own process never pays for importing trafilatura. A worker that
    no warm-up job reached warms its date parser first (from the pattern cache; a no-op
    once warm)."""
    from ingest.extract import extract_page
    from ingest.net.decode import decode_html
    from ingest.warmup import warm_extractor

    warm_extractor()
    return extract_page(decode_html(body, content_type), url)


def _timed_call(timeout: float, fn: Callable[..., T], *args: Any) -> T:
    """Run fn(*args) in a worker, stopping it once it has run for `timeout` seconds. Only
    a worker's main thread can take signals; elsewhere (in-process) the parent's wait is
    the only limit."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        try:
            return fn(*args)
        finally:  # the timer may fire in here too: the outer handler still catches it
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Overran:
        raise ExtractError(
            "extract_timeout", f"processing took longer than {timeout:.0f}s"
        ) from None
    finally:
        signal.signal(signal.SIGALRM, previous)


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
