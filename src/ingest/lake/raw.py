"""The raw zone: every page that reached extraction, as fetched, in WARC files.

A run's WARC files are built in memory (gzip per record), staged like its Parquet parts
(`_staging/<run>/<attempt>/raw-…warc.gz`) and published by its commit to
`raw/ingest_date=YYYY-MM-DD/<run>-<attempt>-<shard>-<n>.warc.gz`, the name its article rows
already carry. So a committed article always has its record, and a run that never commits
leaves its WARC files only in staging, where no reader of `raw/` looks (maintenance drops
them with the rest of an abandoned run's staging).
"""

from __future__ import annotations

import threading
from typing import Any

from ingest.lake.parts import STAGING, PartInfo
from ingest.store import Store
from ingest.warc import FetchRecord, WarcWriter

RAW = "raw/"
KIND = "raw"
ROLL_BYTES = 64 * 2**20  # a WARC file is closed at this size (Common Crawl uses ~1 GB)


def published_key(part: PartInfo) -> str:
    """Where a staged WARC file lives once its run committed."""
    run_key, attempt, name = part.staged[len(STAGING) :].split("/", 2)
    return f"{RAW}ingest_date={part.ingest_date}/{run_key}-{attempt}-{name[len('raw-') :]}"


class RawArchive:
    """One shard attempt's WARC files. Thread-safe: the fetch threads add concurrently."""

    def __init__(
        self,
        store: Store,
        run_key: str,
        attempt: str,
        shard: int,
        ingest_date: str,
        software: str,
        roll_bytes: int = ROLL_BYTES,
    ) -> None:
        self.store = store
        self.run_key = run_key
        self.attempt = attempt
        self.shard = shard
        self.ingest_date = ingest_date
        self.software = software
        self.roll_bytes = roll_bytes
        self.parts: list[PartInfo] = []
        self.bytes_written = 0
        self._lock = threading.Lock()
        self._writer: WarcWriter | None = None

    def _part(self) -> PartInfo:
        name = f"raw-{self.shard:03d}-{len(self.parts):05d}.warc.gz"
        return PartInfo(KIND, f"{STAGING}{self.run_key}/{self.attempt}/{name}", self.ingest_date, 0)

    def add(self, record: FetchRecord) -> dict[str, Any]:
        """Archive one response; the row columns that locate its record."""
        with self._lock:
            if self._writer is None:
                self._writer = WarcWriter(self.software, {"run": self.run_key})
            location = self._writer.add(record)
            where = published_key(self._part())
            if self._writer.size >= self.roll_bytes:
                self._flush()
        return {
            "warc_file": where,
            "warc_offset": location.offset,
            "warc_length": location.length,
            "warc_record_id": location.record_id,
        }

    def _flush(self) -> None:
        if self._writer is None or self._writer.count == 0:
            return
        part = self._part()
        data = self._writer.getvalue()
        self.store.put_bytes(part.staged, data)
        part.rows = self._writer.count
        self.parts.append(part)
        self.bytes_written += len(data)
        self._writer = None

    def close(self) -> list[PartInfo]:
        with self._lock:
            self._flush()
        return self.parts


def publish(store: Store, parts: list[PartInfo]) -> None:
    """Copy a committed run's staged WARC files to their place under raw/ (idempotent: a
    copy already made is made again, byte for byte the same)."""
    for part in parts:
        if part.kind != KIND:
            continue
        if store.exists(part.staged):
            store.copy(part.staged, published_key(part))
