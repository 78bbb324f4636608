"""The articles and rejects tables: Delta Lake through delta-rs, on a directory or on S3.

Delta keeps its transaction log beside the data (`<table>/_delta_log/`), so no catalog
service is needed; every warehouse with a Delta reader sees committed rows only, and
compaction and vacuum never change what a reader counts. The schema files in schemas/
stay the contract: the table schema is derived from them plus the partition column.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, WriterProperties
from deltalake.exceptions import DeltaError, TableNotFoundError

from ingest import schema
from ingest.lake.parts import ROW_GROUP_ROWS
from ingest.state import FEEDS
from ingest.store import S3Store, Store, StoreError, StoreMissing

ARTICLES = "articles"
REJECTS = "rejects"
PARTITION = "ingest_date"  # UTC date of the run: runs append to one or two partitions only
LEGACY_FIRST_MANIFEST = "_manifests/0000000001.json"  # present in every pre-Delta store

# Old log entries and removed files are kept a week (time travel, slow readers); run
# transactions a quarter (re-running an older run id is then deduplicated by keys only).
TABLE_CONFIG = {
    "delta.logRetentionDuration": "interval 30 days",
    "delta.deletedFileRetentionDuration": "interval 7 days",
    "delta.setTransactionRetentionDuration": "interval 90 days",
}


# After a run's commit: checkpoint every 100 versions as usual, but leave expired-log
# cleanup to `ingest maintain`. delta-rs's cleanup lists all of `_delta_log/` on every
# commit (measured: 27 of a no-change run's 37 LISTs on a year-old table), a cost that
# grows with history; maintenance runs it once a day instead.
RUN_COMMIT_HOOKS = PostCommitHookProperties(create_checkpoint=True, cleanup_expired_logs=False)


def writer_properties() -> WriterProperties:
    """zstd, like the rest of the store; row groups sized for selective reads."""
    return WriterProperties(compression="ZSTD", max_row_group_size=ROW_GROUP_ROWS)


def source_schema(kind: str) -> schema.Schema:
    return schema.article() if kind == ARTICLES else schema.reject()


def table_schema(kind: str) -> pa.Schema:
    """The schema file's columns, then the partition column."""
    base = source_schema(kind).arrow
    return base.append(pa.field(PARTITION, pa.date32(), nullable=False))


def open_table(store: Store, kind: str) -> DeltaTable | None:
    try:
        return DeltaTable(store.table_uri(kind), storage_options=store.storage_options())
    except TableNotFoundError:
        return None


def is_legacy(store: Store) -> bool:
    """Whether the store still holds the earlier layout (every such store has commit 1)."""
    return store.exists(LEGACY_FIRST_MANIFEST)


def require_store(store: Store) -> None:
    """Commands that only read or report refuse a store nothing was ever written to,
    instead of creating it: a typo in the URI must not look like an empty, healthy store."""
    if isinstance(store, S3Store):
        store.check()  # a missing bucket or refused credentials get their own message
    if open_table(store, ARTICLES) is None and not store.exists(FEEDS) and not is_legacy(store):
        raise StoreMissing(
            f"no newsflow store at {store.uri}: nothing was ever ingested there "
            "(check the URI; `ingest run` creates a store)"
        )


def ensure_table(store: Store, kind: str, allow_legacy: bool = False) -> DeltaTable:
    """The table, created empty on first use (two creators at once: one wins, both open)."""
    table = open_table(store, kind)
    if table is not None:
        return table
    if not allow_legacy and is_legacy(store):
        raise StoreError(
            f"store {store.uri} uses the earlier layout (a manifest log): convert it once "
            f"with `ingest migrate --store {store.uri}`"
        )
    with contextlib.suppress(DeltaError):  # a concurrent creator won version 0
        DeltaTable.create(
            store.table_uri(kind),
            schema=table_schema(kind),
            partition_by=[PARTITION],
            mode="ignore",
            name=kind,
            description=f"newsflow {kind}, schema {source_schema(kind).name} "
            f"v{source_schema(kind).version}",
            configuration=TABLE_CONFIG,
            storage_options=store.storage_options(),
            commit_properties=CommitProperties(max_commit_retries=0),  # version 0 or nothing
        )
    table = open_table(store, kind)
    if table is None:
        raise RuntimeError(f"table {kind} could not be created in {store.uri}")
    return table


def log_key(kind: str, version: int) -> str:
    return f"{kind}/_delta_log/{version:020d}.json"


def commit_entry(store: Store, kind: str, version: int) -> list[dict[str, Any]] | None:
    """The actions of one commit, read straight from the log (None once it was cleaned up)."""
    raw = store.get_bytes(log_key(kind, version))
    if raw is None:
        return None
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


def data_key(kind: str, path: str) -> str:
    """The store key of a data file the table's log names (relative, percent-encoded)."""
    if "://" in path:  # some delta-rs calls name full URIs
        path = path.split(f"/{kind}/", 1)[-1]
    return f"{kind}/{unquote(path)}"


def read_data_file(store: Store, kind: str, path: str, columns: list[str]) -> pa.Table:
    raw = store.get_bytes(data_key(kind, path))
    if raw is None:
        raise FileNotFoundError(f"data file of the {kind} table missing: {path}")
    rows = pq.read_table(io.BytesIO(raw), columns=columns)
    # Files written by delta-rs's MERGE (in-place updates, re-extraction) carry view types
    # (string_view): back to the schema's types, which every kernel supports.
    wanted = table_schema(kind)
    return rows.cast(pa.schema([wanted.field(name) for name in rows.column_names]))


def iter_data_file(
    store: Store, kind: str, path: str, columns: list[str], batch_rows: int
) -> Iterator[pa.Table]:
    """`read_data_file` a batch of rows at a time: only one batch is ever decoded, so a
    reader that keeps a little of each row (not its text) needs memory for one batch, not
    for the whole file."""
    raw = store.get_bytes(data_key(kind, path))
    if raw is None:
        raise FileNotFoundError(f"data file of the {kind} table missing: {path}")
    wanted = table_schema(kind)
    parquet = pq.ParquetFile(pa.BufferReader(raw))
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
        rows = pa.Table.from_batches([batch])
        yield rows.cast(pa.schema([wanted.field(name) for name in rows.column_names]))


def commit_info(actions: list[dict[str, Any]]) -> dict[str, Any]:
    return next((a["commitInfo"] for a in actions if "commitInfo" in a), {})


def read_committed(store: Store, kind: str = ARTICLES) -> pa.Table:
    """Every committed row of `kind` with its partition column (tests and small tools)."""
    table = open_table(store, kind)
    if table is None:
        return table_schema(kind).empty_table()
    return pa.table(table.to_pyarrow_table())


def partition_days(table: DeltaTable, start: date | None, end: date | None) -> list[str]:
    """The table's ingest_date partitions within [start, end], from its file list."""
    actions = pa.table(table.get_add_actions(flatten=True))
    column = f"partition.{PARTITION}"
    if column not in actions.column_names:
        return []
    days = {str(d) for d in actions[column].to_pylist() if d is not None}
    return sorted(
        d
        for d in days
        if (start is None or d >= start.isoformat()) and (end is None or d <= end.isoformat())
    )
