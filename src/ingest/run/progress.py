"""Progress of a run's pages: a bar on a terminal, a log line every few seconds otherwise
(Airflow, cron)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, enabled: bool, interval: float = 10.0) -> None:
        self._bar: Any = None
        self._interval = interval
        self._last = time.monotonic()
        self.done = 0
        self.total = 0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="page", desc="ingest", leave=False)

    def add_total(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def step(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            log.info("progress: %d/%d pages processed", self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
