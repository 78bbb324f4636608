"""Politeness per host: at most INGEST_PER_HOST_CONCURRENCY requests at once, at least
INGEST_PER_HOST_DELAY between their starts, and no request at all while the host's own
Retry-After pause lasts."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ingest.net.deadline import Deadline, Watchdog
from ingest.net.errors import FetchError

log = logging.getLogger(__name__)


class Hosts:
    def __init__(
        self, concurrency: int, delay: float, stopping: threading.Event, watchdog: Watchdog
    ) -> None:
        self.concurrency = concurrency
        self.delay = delay
        self._stopping = stopping  # set when the run stops: waits end at once
        self._watchdog = watchdog
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._next: dict[str, float] = {}
        self._paused: dict[str, float] = {}  # host -> monotonic end of its Retry-After

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            slot = self._slots.get(host)
            if slot is None:
                slot = self._slots[host] = threading.BoundedSemaphore(self.concurrency)
            return slot

    def _wait_turn(self, host: str) -> None:
        delay = self.delay
        if delay <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + delay
        if start > now:
            self._stopping.wait(start - now)

    def pause(self, host: str, seconds: float) -> None:
        """The host asked for a pause (Retry-After on 429/503): nothing more is sent to it
        until the pause is over, in this run; its pages are retried by the next run."""
        with self._lock:
            until = time.monotonic() + seconds
            self._paused[host] = max(until, self._paused.get(host, 0.0))
        log.warning("%s asked for a pause of %.0fs (Retry-After): not fetching there", host,
                    seconds)  # fmt: skip

    def check_paused(self, host: str, url: str) -> None:
        with self._lock:
            left = self._paused.get(host, 0.0) - time.monotonic()
        if left > 0:
            raise FetchError(
                "rate_limited",
                f"{host} asked for a pause (Retry-After), {left:.0f}s left: {url} not fetched",
                transient=True,
                retry_after=left,
            )

    @contextmanager
    def turn(self, host: str, deadline: Deadline) -> Iterator[None]:
        """Hold one of the host's slots; the deadline runs only while it is held."""
        with self._slot(host):
            self._wait_turn(host)
            deadline.resume()
            self._watchdog.wake()
            try:
                yield
            finally:
                deadline.pause()
