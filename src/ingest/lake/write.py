"""Writing one transaction: the rows in the table's shape, one append at exactly the next
version, and the one retry loop every commit goes through."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import TypeVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from ingest.lake.tables import PARTITION, RUN_COMMIT_HOOKS, table_schema, writer_properties

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_COMMIT_ATTEMPTS = 50


def append(
    table: DeltaTable,
    kind: str,
    batches: Iterator[pa.RecordBatch],
    run_key: str,
    version: int,
    metadata: dict[str, str],
) -> None:
    """One transaction at exactly `version`, recorded as `run_key`'s app transaction
    (CommitFailedError if another commit took that version)."""
    schema = table_schema(kind)
    reader = pa.RecordBatchReader.from_batches(schema, batches)
    write_deltalake(
        table,
        reader,
        mode="append",
        partition_by=[PARTITION],
        schema_mode="merge",  # a compatible new nullable column joins the table schema
        writer_properties=writer_properties(),
        commit_properties=CommitProperties(
            custom_metadata=metadata,
            max_commit_retries=0,
            # last_updated lets delta.setTransactionRetentionDuration expire it, so the
            # run transactions a snapshot carries stay bounded
            app_transactions=[Transaction(run_key, version, last_updated=now_ms())],
        ),
        post_commithook_properties=RUN_COMMIT_HOOKS,
    )


def until_committed(what: str, attempt: Callable[[], T]) -> T:
    """The one retry loop of every commit: run `attempt` (which reads the table afresh and
    commits at exactly the next version) again while a concurrent commit takes that version;
    `max_commit_retries=0` keeps delta-rs from retrying onto a later version by itself."""
    for _ in range(MAX_COMMIT_ATTEMPTS):
        try:
            return attempt()
        except CommitFailedError:
            log.info("%s: a concurrent commit took the version; checking again", what)
    raise RuntimeError(f"could not commit {what}: the table is too busy")


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def with_sources(rows: pa.Table, sources: dict[str, list[list[str]]]) -> pa.Table:
    """Every feed of the run that linked each article, sorted, and the first of them as
    its primary source: deterministic, whichever poll happened to finish first."""
    if not sources or "sources" not in rows.column_names:
        return rows
    ids_ = rows["article_id"].to_pylist()
    primary, primary_url, every = [], [], []
    for aid, name, url, own in zip(
        ids_, rows["source"].to_pylist(), rows["feed_url"].to_pylist(),
        rows["sources"].to_pylist(), strict=True,
    ):  # fmt: skip
        linked = sorted({(n, u) for n, u in sources.get(aid, [])} | {(name, url)})
        primary.append(linked[0][0])
        primary_url.append(linked[0][1])
        every.append(sorted({n for n, _ in linked} | set(own or [])))
    for column, values in (("source", primary), ("feed_url", primary_url), ("sources", every)):
        index = rows.column_names.index(column)
        rows = rows.set_column(
            index, rows.schema.field(column), pa.array(values, rows.schema.field(column).type)
        )
    return rows


def with_partition(rows: pa.Table, ingest_date: str, target: pa.Schema) -> pa.Table:
    """The rows in the table's schema with their partition column. Rows written before a
    compatible new column existed (staged by an older version, or migrated) get nulls."""
    day = pa.array([date.fromisoformat(ingest_date)] * rows.num_rows, pa.date32())
    return conform(rows, day, target)


def conform(rows: pa.Table, partition: pa.Array, target: pa.Schema) -> pa.Table:
    """`rows` in the table's schema (missing nullable columns as nulls) with `partition`
    as the partition column, one value per row."""
    columns = [
        rows[f.name] if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        for f in target
        if f.name != PARTITION
    ]
    names = [f.name for f in target if f.name != PARTITION]
    return pa.Table.from_arrays([*columns, partition], names=[*names, PARTITION]).cast(target)
