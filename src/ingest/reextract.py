"""Re-extraction from the raw archive: today's extraction over the pages as they were
fetched, with no network, so better extraction reaches every article already ingested.

Day by day (one table partition at a time, in batches of rows), each selected row's WARC
record is read with one ranged GET, decoded and extracted in the process pool on all
cores, and normalized as the run did. Rows whose extracted columns changed (or that an
older extractor made) are updated in place by one MERGE per batch, limited to that day's
partition: one row per article stays the invariant, and identity, source, fetch and
archive columns stay as they are. A row whose record cannot be read (a truncated or
damaged WARC file) is counted as `raw_unreadable`, logged with its raw key and article id,
and left as it was; the others go on. Idempotent and resumable: a row already re-extracted by
this extractor is either unchanged or, with `older_than`, no longer selected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties
from deltalake.exceptions import CommitFailedError

from ingest.errors import ExtractError
from ingest.extract import rules_version_of
from ingest.extractor_pool import ExtractorPool
from ingest.lake import Lake
from ingest.lake.keys import keys_of_rows
from ingest.lake.tables import (
    ARTICLES,
    PARTITION,
    RUN_COMMIT_HOOKS,
    partition_days,
    table_schema,
    writer_properties,
)
from ingest.normalize import article_row, index_date
from ingest.sources.model import FeedEntry
from ingest.store import Store
from ingest.warc import FetchRecord, read_record

log = logging.getLogger(__name__)

# What extraction and normalization produce; everything else in a row stays.
EXTRACTED = [
    "title", "authors", "published_at", "published_at_source", "language", "site_name",
    "summary", "text", "word_count", "categories", "tags", "image_url", "content_sha256",
    "simhash", "extractor",
]  # fmt: skip
MAX_COMMIT_ATTEMPTS = 20


@dataclass
class ReextractResult:
    days: list[str] = field(default_factory=list)
    selected: int = 0  # rows with a raw record that the filter chose
    reextracted: int = 0
    changed: int = 0  # rows updated in place
    missing_raw: int = 0  # rows whose WARC record is gone (expired) or never existed
    raw_unreadable: int = 0  # the record is there but damaged: the row keeps what it had
    failed: int = 0  # extraction failed: the row keeps what it had
    index_dates: set[str] = field(default_factory=set)  # index days to rebuild
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"re-extracted {self.reextracted} of {self.selected} selected articles over "
            f"{len(self.days)} days in {self.seconds:.1f} s: {self.changed} changed and "
            f"updated in place, {self.reextracted - self.changed} unchanged, "
            f"{self.failed} failed, {self.missing_raw} without a raw record, "
            f"{self.raw_unreadable} with an unreadable raw record; index days to rebuild: "
            f"{', '.join(sorted(self.index_dates)) or 'none'}"
        )


def reextract(
    store: Store,
    *,
    start: date | None = None,
    end: date | None = None,
    older_than: int | None = None,
    workers: int = 2,
    batch_rows: int = 1000,
    extract_timeout: float = 60.0,
    start_method: str = "forkserver",
    progress: bool = False,
) -> ReextractResult:
    t0 = time.monotonic()
    lake = Lake(store)
    lake.recover()  # a committed run's WARC files are published before we read them
    result = ReextractResult(days=partition_days(lake.articles(), start, end))
    pool = ExtractorPool(workers, extract_timeout, start_method)
    threads = ThreadPoolExecutor(max(2, workers * 2), thread_name_prefix="reextract")
    bar = _bar(progress)
    try:
        pool.start()
        for day in result.days:
            for batch in _batches(lake, day, older_than, batch_rows):
                result.selected += batch.num_rows
                rows = batch.to_pylist()
                outcomes = list(threads.map(lambda r: _one(store, pool, r), rows))
                changed = []
                for old, (outcome, fresh) in zip(rows, outcomes, strict=True):
                    if outcome == "missing":
                        result.missing_raw += 1
                    elif outcome == "unreadable":
                        result.raw_unreadable += 1
                    elif outcome == "failed":
                        result.failed += 1
                    else:
                        result.reextracted += 1
                        if _differs(old, fresh):
                            changed.append((old, fresh))
                if changed:
                    _merge(lake, day, [fresh for _, fresh in changed])
                    result.changed += len(changed)
                    for old, fresh in changed:
                        if _differs(old, fresh, ignore=("extractor",)):  # what an index shows
                            result.index_dates.add(index_date(old).isoformat())
                            result.index_dates.add(index_date(fresh).isoformat())
                if bar is not None:
                    bar.update(len(rows))
    finally:
        if bar is not None:
            bar.close()
        threads.shutdown(wait=True, cancel_futures=True)
        pool.close()
    result.seconds = time.monotonic() - t0
    return result


def _bar(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit="article", desc="re-extracting")


def _batches(lake: Lake, day: str, older_than: int | None, batch_rows: int) -> Iterator[pa.Table]:
    """One partition's selected rows, `batch_rows` at a time (bounded memory)."""
    table = lake.articles()
    target = table_schema(ARTICLES)
    dataset = table.to_pyarrow_dataset(file_pruning_predicate=[(PARTITION, "=", day)])
    for batch in dataset.to_batches(batch_size=batch_rows, columns=target.names):
        rows = pa.Table.from_batches([batch]).cast(target)  # string_view etc. to the schema
        if rows.num_rows == 0 or "warc_file" not in rows.column_names:
            continue
        keep = [
            i
            for i, (warc, extractor) in enumerate(
                zip(rows["warc_file"].to_pylist(), rows["extractor"].to_pylist(), strict=True)
            )
            if warc is not None and (older_than is None or rules_version_of(extractor) < older_than)
        ]
        if keep:
            yield rows.take(keep)


def _one(store: Store, pool: ExtractorPool, row: dict[str, Any]) -> tuple[str, Any]:
    """("ok", the row as today's extraction makes it from its raw record), or
    ("missing", None) / ("unreadable", None) / ("failed", None)."""
    raw = store.get_range(row["warc_file"], row["warc_offset"], row["warc_length"])
    if raw is None:
        return "missing", None
    try:
        record = _record_of(row, raw)
    except ValueError as exc:
        # one damaged record (a truncated file, flipped bytes) must not stop the others
        log.warning(
            "raw record of article %s unreadable: %s bytes %d+%d: %s; the row is kept as is",
            row["article_id"],
            row["warc_file"],
            row["warc_offset"],
            row["warc_length"],
            exc,
        )
        return "unreadable", None
    content_type = record.headers.get("content-type", "")
    try:
        extracted = pool.extract(record.body, content_type, record.final_url)
    except ExtractError as exc:
        log.warning("re-extraction of %s failed: %s", row["url"], exc)
        return "failed", None
    entry = FeedEntry(
        feed=row["source"],
        feed_url=row["feed_url"],
        link=row["url"],
        title=row["title"],
        summary=row["summary"],
        published=row["published_at"] if row["published_at_source"] == "feed" else None,
        updated=row["updated_at"],
        authors=list(row["authors"] or []),
        categories=list(row["categories"] or []),
        language=row["language"],
    )
    fresh = article_row(
        entry,
        final_url=record.final_url,
        http_status=record.status,
        fetched_at=row["fetched_at"],
        extracted=extracted,
        run_id=row["run_id"],
    )
    merged = dict(row)
    merged.update({name: fresh[name] for name in EXTRACTED})
    return "ok", merged


def _record_of(row: dict[str, Any], raw: bytes) -> FetchRecord:
    """The row's response record out of its byte range; ValueError when the range is not
    that record (the file ends early, the bytes are damaged, or another record is there)."""
    if len(raw) != row["warc_length"]:
        raise ValueError(
            f"the file ends before the record does ({len(raw)} of {row['warc_length']} bytes)"
        )
    record, record_id = read_record(raw)
    expected = row.get("warc_record_id")
    if expected and record_id != expected:
        raise ValueError(f"the range holds record {record_id}, not {expected}")
    return record


def _differs(old: dict[str, Any], fresh: dict[str, Any], ignore: tuple[str, ...] = ()) -> bool:
    return any(old.get(name) != fresh.get(name) for name in EXTRACTED if name not in ignore)


def _merge(lake: Lake, day: str, rows: list[dict[str, Any]]) -> None:
    """The changed rows of one batch into their partition, in place."""
    target = table_schema(ARTICLES)
    source = pa.Table.from_pylist(rows, schema=target)
    updates = {name: f"s.{name}" for name in EXTRACTED}
    for _attempt in range(MAX_COMMIT_ATTEMPTS):
        table = lake.articles()
        try:
            table.merge(
                source,
                predicate=f"t.{PARTITION} = '{day}' AND t.article_id = s.article_id",
                source_alias="s",
                target_alias="t",
                writer_properties=writer_properties(),
                commit_properties=CommitProperties(
                    custom_metadata={
                        "newsflow.rewrite": "reextract",
                        "newsflow.rows": str(source.num_rows),
                    },
                    max_commit_retries=0,
                ),
                post_commithook_properties=RUN_COMMIT_HOOKS,
            ).when_matched_update(updates=updates).execute()
            break
        except CommitFailedError:
            continue  # a run or maintenance committed meanwhile: merge again on top of it
    else:
        raise RuntimeError(f"could not commit the re-extraction of {day}: the table is too busy")
    lake.keys.mark(keys_of_rows(source, day), replace=True)  # the new bodies' hashes
