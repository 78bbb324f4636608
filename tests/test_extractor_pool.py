"""A worker that dies or hangs costs one call, never the run."""

from __future__ import annotations

import os
import time

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
