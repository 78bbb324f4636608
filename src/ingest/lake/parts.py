"""Staged Parquet parts: what a run (or each of its shards) writes before its commit.

Parts live under `_staging/<run>/<attempt>/…`, outside every table, so nothing a reader
sees depends on them until the commit copies their rows into the tables.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.schema import Schema
from ingest.store import Store

STAGING = "_staging/"
ROW_GROUP_ROWS = 2_000
# Low-cardinality string columns get dictionary encoding; free text does not.
DICTIONARY_COLUMNS = {
    "source", "feed_url", "language", "site_name", "published_at_source", "run_id",
    "stage", "reason",
}  # fmt: skip


def preload_in_background() -> None:
    """Import what flushing parts and committing them import on first use (pyarrow's
    compute and dataset modules), in a thread, while the run's process mostly waits on
    its workers: otherwise the run pays for them after its last page, with idle cores.
    Call it only after any fork: a child forked mid-import would inherit a held lock."""

    def load() -> None:
        import pyarrow.compute
        import pyarrow.dataset  # noqa: F401

    threading.Thread(target=load, name="preload", daemon=True).start()


def write_parquet(table: pa.Table, path: Path | io.BytesIO) -> None:
    """zstd, statistics on, dictionaries only where they pay off."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        write_statistics=True,
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=[c for c in table.column_names if c in DICTIONARY_COLUMNS],
    )


@dataclass
class PartInfo:
    kind: str  # "articles" | "rejects"
    staged: str  # key of the staged Parquet file
    ingest_date: str  # the partition its rows go to
    rows: int


class PartWriter:
    """Buffers up to `part_rows` rows, then sorts and writes one Parquet part to staging.

    Memory is bounded by one part, whatever the size of the run.
    """

    def __init__(
        self,
        store: Store,
        schema: Schema,
        kind: str,
        run_key: str,
        ingest_date: str,
        part_rows: int,
        shard: int = 0,
        attempt: str = "a",
    ) -> None:
        self.store = store
        self.schema = schema
        self.kind = kind
        self.run_key = run_key
        self.ingest_date = ingest_date
        self.part_rows = part_rows
        self.shard = shard
        self.attempt = attempt  # two attempts of one run (zombie + retry) never share keys
        self.parts: list[PartInfo] = []
        self._rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self.schema.arrow)
        self._rows = []
        if self.schema.sort_key:
            table = table.sort_by([(k, "ascending") for k in self.schema.sort_key])
        name = f"{self.kind}-{self.shard:03d}-{len(self.parts):05d}.parquet"
        staged = f"{STAGING}{self.run_key}/{self.attempt}/{name}"
        # In memory, not a scratch file: nothing is left behind on any exit path, and one
        # compressed part is far smaller than the rows it was built from.
        buf = io.BytesIO()
        write_parquet(table, buf)
        self.store.put_bytes(staged, buf.getvalue())
        self.parts.append(PartInfo(self.kind, staged, self.ingest_date, table.num_rows))

    def close(self) -> list[PartInfo]:
        self.flush()
        return self.parts


def read_part(store: Store, part: PartInfo, columns: list[str] | None = None) -> pa.Table:
    raw = store.get_bytes(part.staged)
    if raw is None:
        raise FileNotFoundError(f"staged part missing: {part.staged}")
    return pq.read_table(io.BytesIO(raw), columns=columns)
