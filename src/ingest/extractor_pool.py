"""A process pool for extraction that survives crashed or stuck workers.

One hostile page must not take the run down: a worker that dies (BrokenProcessPool) or
exceeds the extraction timeout is replaced and only that page becomes a reject.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ingest.extract import ExtractError, extract_page

log = logging.getLogger(__name__)


class ExtractorPool:
    def __init__(self, workers: int, timeout: float) -> None:
        self.workers = workers
        self.timeout = timeout
        # forkserver: workers never inherit the parent's threads and locks (fork-safety),
        # and preloading trafilatura makes each new worker cheap.
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["ingest.extract"])
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None

    def _get(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=self._ctx)
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

    def extract(self, html: str, url: str) -> dict[str, Any]:
        for _attempt in range(2):
            pool = self._get()
            try:
                future = pool.submit(extract_page, html, url)
                return future.result(timeout=self.timeout)
            except BrokenProcessPool:
                log.warning("extraction worker died; restarting the pool (page %s)", url)
                self._replace(pool, kill=False)
            except FuturesTimeout:
                log.warning(
                    "extraction of %s exceeded %.0fs; restarting the pool", url, self.timeout
                )
                self._replace(pool, kill=True)
                raise ExtractError(
                    "extract_timeout", f"extraction took longer than {self.timeout:.0f}s"
                ) from None
        raise ExtractError("extract_crashed", "the extraction worker crashed on this page")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
