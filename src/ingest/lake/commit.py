"""How a run's staged rows become visible exactly once: one articles-table transaction.

Protocol (the same for a single process and for Airflow shards + a commit task):

1. Shards write Parquet parts under `_staging/<run>/<attempt>/`, outside every table.
2. The commit records its request (`_staging/<run>/commit.json`), brings the key markers
   up to the table's current version V (`KeyIndex.roll_forward`), drops rows whose article
   an earlier commit named, and appends the rest to `articles` as table version V+1 with
   the run's app transaction `(run_key, V+1)` and its report in the commit metadata. It
   never lets delta-rs retry onto a later version (`max_commit_retries=0`): if another
   commit took V+1, it starts again from step 2, so its duplicate check always covered
   every earlier commit. That articles commit is the commit point.
3. Publication, each step idempotent: key markers for the new rows, the rejects (their
   own table transaction, once per run), the in-place updates of articles a source
   changed (one MERGE, once per run: app transaction `<run_key>/updates`), feed state,
   the report file, then the staging is dropped. Every run and commit first finishes the
   publication of committed runs whose staging is still there (`recover`), so a kill
   anywhere loses and doubles nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import CommitFailedError

from ingest.lake import raw
from ingest.lake.keys import KEY_COLUMNS, KeyIndex, Marker, keys_of_rows
from ingest.lake.parts import STAGING, PartInfo, read_part
from ingest.lake.tables import (
    ARTICLES,
    PARTITION,
    REJECTS,
    RUN_COMMIT_HOOKS,
    commit_entry,
    commit_info,
    ensure_table,
    table_schema,
    writer_properties,
)
from ingest.report import freshness
from ingest.state import write_feed_states
from ingest.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

REPORTS = "_reports/"
UPDATES = "updates"  # staged parts holding new versions of committed articles
MAX_COMMIT_ATTEMPTS = 50


@dataclass
class CommitRequest:
    """Everything one run wants to make visible, gathered from its shards."""

    run_id: str
    run_key: str
    parts: list[PartInfo]
    article_ids: list[str]
    feed_states: dict[str, dict[str, Any]]
    report: dict[str, Any]
    # Index dates (UTC publication day, else fetch day) of the articles: what to rebuild.
    index_dates: list[str] = field(default_factory=list)
    # Publication time (unix seconds) of the articles that have one: the run's freshness.
    published_at: dict[str, float] = field(default_factory=dict)
    # Every feed that linked each article in this run: article id -> [[name, feed URL]...]
    sources: dict[str, list[list[str]]] = field(default_factory=dict)
    # Articles updated at their source: article id -> ingest date of the row to update
    # (their new rows are the parts of kind UPDATES)
    update_targets: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CommitRequest:
        data = json.loads(raw)
        data["parts"] = [PartInfo(**p) for p in data["parts"]]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class CommitResult:
    version: int
    run_id: str
    already_committed: bool
    articles_committed: int
    duplicates_dropped: int
    dates: list[str]  # ingest_date partitions written
    index_dates: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def request_key(run_key: str) -> str:
    return f"{STAGING}{run_key}/commit.json"


def report_key(run_key: str, report: dict[str, Any]) -> str:
    """Reports by start day, so maintenance expires them by listing whole days."""
    day = str(report.get("started_at") or datetime.now(UTC).isoformat())[:10]
    return f"{REPORTS}date={day}/{run_key}.json"


class Lake:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = KeyIndex(store)
        self._articles: DeltaTable | None = None

    # ------------------------------------------------------------------ reading

    def articles(self) -> DeltaTable:
        """The articles table at its newest version (loaded once, then brought up to date:
        the log since the last read, not the whole history)."""
        if self._articles is None:
            self._articles = ensure_table(self.store, ARTICLES)
        else:
            self._articles.update_incremental()
        return self._articles

    def committed_run(self, run_key: str, table: DeltaTable | None = None) -> int | None:
        """The articles version that committed this run, or None."""
        table = table or self.articles()
        return table.transaction_version(run_key)

    def commit_metadata(self, version: int) -> dict[str, Any]:
        actions = commit_entry(self.store, ARTICLES, version)
        return commit_info(actions) if actions else {}

    def result_of(self, version: int) -> CommitResult:
        """What the commit at `version` did, from its own metadata (no side files)."""
        info = self.commit_metadata(version)
        return CommitResult(
            version=version,
            run_id=info.get("newsflow.run_id", ""),
            already_committed=True,
            articles_committed=int(info.get("newsflow.articles", 0)),
            duplicates_dropped=int(info.get("newsflow.duplicates_dropped", 0)),
            dates=json.loads(info.get("newsflow.dates", "[]")),
            index_dates=json.loads(info.get("newsflow.index_dates", "[]")),
            report=json.loads(info.get("newsflow.report", "{}")),
        )

    # ------------------------------------------------------------------ recovery

    def recover(self) -> list[str]:
        """Finish what killed processes left: key markers up to the table's head, and the
        publication of committed runs whose staging is still there. Returns those runs."""
        table = self.articles()
        ensure_table(self.store, REJECTS)  # readers' definitions need both from the start
        self.keys.roll_forward(table.version())
        finished = []
        for run_key in self.staged_runs():
            version = self.committed_run(run_key, table)
            if version is None:
                continue  # still staging, or abandoned (`ingest maintain` clears it)
            raw = self.store.get_bytes(request_key(run_key))
            if raw is not None:
                log.warning("finishing the publication of run %s", run_key)
                self._publish(CommitRequest.from_json(raw), self.result_of(version))
            self._drop_staging(run_key)
            finished.append(run_key)
        return finished

    def staged_runs(self) -> list[str]:
        """Runs with staging: bounded by runs in flight or unpublished, not by history."""
        return sorted({k[len(STAGING) :].split("/", 1)[0] for k in self.store.list(STAGING)})

    # ------------------------------------------------------------------ commit

    def commit(self, request: CommitRequest) -> CommitResult:
        """Append the run's new articles in one table transaction; idempotent per run."""
        self.store.put_bytes(request_key(request.run_key), request.to_json())
        table = self.articles()

        def attempt() -> tuple[int, dict[str, str] | None]:
            table.update_incremental()
            head = table.version()
            done = self.committed_run(request.run_key, table)
            if done is not None:  # another attempt of this run got there first
                return done, None
            self.keys.roll_forward(head)
            accepted, dropped = self._new_rows(request)
            version = head + 1
            _finish_report(request, accepted, dropped, version)
            new_keys: dict[str, str] = {}  # filled while the rows are read for the write
            batches = self._batches(request, accepted, new_keys)
            self.append(table, ARTICLES, batches, request.run_key, version, _metadata(request))
            return version, new_keys

        version, new_keys = until_committed(f"run {request.run_id}", attempt)
        if new_keys is None:
            result = self.result_of(version)
            self._publish(request, result)
            return result
        self.keys.mark(new_keys)
        self.keys.advance(version)
        result = self.result_of(version)
        self._publish(request, result)
        result.already_committed = False
        return result

    def _new_rows(self, request: CommitRequest) -> tuple[set[str], int]:
        """Article ids of this run that no earlier commit named (and each only once)."""
        wanted = list(dict.fromkeys(request.article_ids))
        committed = self.keys.committed(wanted)
        accepted = {a for a in wanted if a not in committed}
        dropped = len(request.article_ids) - len(accepted)
        if dropped:
            log.info("%d articles were committed by an earlier run: not added again", dropped)
        return accepted, dropped

    def _batches(
        self, request: CommitRequest, accepted: set[str], keys: dict[str, str]
    ) -> Iterator[pa.RecordBatch]:
        """The run's accepted article rows, one staged part at a time (bounded memory).
        Every key naming an accepted article goes into `keys` on the way (one read)."""
        emitted: set[str] = set()
        target = table_schema(ARTICLES)
        for part in request.parts:
            if part.kind != ARTICLES:
                continue
            rows = read_part(self.store, part)
            markers = keys_of_rows(rows, part.ingest_date)
            keys.update({k: m for k, m in markers.items() if m.article_id in accepted})
            keep = []
            for i, aid in enumerate(rows["article_id"].to_pylist()):
                if aid in accepted and aid not in emitted:
                    emitted.add(aid)
                    keep.append(i)
            if keep:
                rows = with_sources(rows.take(keep), request.sources)
                yield from with_partition(rows, part.ingest_date, target).to_batches()

    def append(
        self,
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
                app_transactions=[Transaction(run_key, version, last_updated=_now_ms())],
            ),
            post_commithook_properties=RUN_COMMIT_HOOKS,
        )

    # ------------------------------------------------------------------ publication

    def _publish(self, request: CommitRequest, committed: CommitResult) -> None:
        """Idempotent: every step may run again after a crash with the same outcome.
        The report copy is the committed one, whichever attempt of the run won."""
        raw.publish(self.store, request.parts)  # before anything reads the new rows' records
        self._commit_rejects(request)
        self._commit_updates(request)
        write_feed_states(self.store, request.feed_states)
        self.store.put_bytes(
            report_key(request.run_key, committed.report),
            json.dumps(committed.report, indent=2, sort_keys=True).encode(),
        )
        self._drop_staging(request.run_key)

    def _commit_rejects(self, request: CommitRequest) -> None:
        """The run's rejects, once: the rejects table's own transaction for this run."""
        parts = [p for p in request.parts if p.kind == REJECTS]
        if not parts:
            return
        table = ensure_table(self.store, REJECTS)
        target = table_schema(REJECTS)

        def attempt() -> None:
            table.update_incremental()
            if table.transaction_version(request.run_key) is not None:
                return
            batches = (
                batch
                for part in parts
                for batch in with_partition(
                    read_part(self.store, part), part.ingest_date, target
                ).to_batches()
            )
            metadata = {"newsflow.run_id": request.run_id, "newsflow.run_key": request.run_key}
            self.append(table, REJECTS, batches, request.run_key, table.version() + 1, metadata)

        until_committed(f"the rejects of run {request.run_id}", attempt)

    def _commit_updates(self, request: CommitRequest) -> None:
        """New versions of articles their source changed, merged into their rows in place:
        one row per article stays the invariant. The MERGE reads only the partitions of
        those rows (named by the key markers), updates a row only when its body changed,
        counts the revision up and adds this run's feeds to `sources`; the primary source
        stays. Once per run (app transaction `<run_key>/updates`)."""
        parts = [p for p in request.parts if p.kind == UPDATES]
        if not parts or not request.update_targets:
            return
        app_id = f"{request.run_key}/updates"
        target = table_schema(ARTICLES)
        names = [f.name for f in target if f.name != PARTITION]
        keep_target = {"article_id", "source", "feed_url", "sources", "revision", "revised_at"}
        updates = {name: f"s.{name}" for name in names if name not in keep_target}
        updates["sources"] = (
            "array_distinct(array_sort(array_concat("
            "coalesce(t.sources, make_array(t.source)), s.sources)))"
        )
        updates["revision"] = "coalesce(t.revision, 1) + 1"
        updates["revised_at"] = "s.fetched_at"
        days = sorted(set(request.update_targets.values()))
        in_days = ", ".join(f"'{day}'" for day in days)  # ISO dates: nothing to escape

        def attempt() -> bool:
            table = self.articles()
            if table.transaction_version(app_id) is not None:
                return False
            source = self._update_rows(request, parts, target)
            if source.num_rows == 0:
                return False
            table.merge(
                source,
                predicate=f"t.{PARTITION} IN ({in_days}) AND t.article_id = s.article_id "
                f"AND t.{PARTITION} = s.{PARTITION}",
                source_alias="s",
                target_alias="t",
                writer_properties=writer_properties(),
                commit_properties=CommitProperties(
                    custom_metadata={
                        "newsflow.run_id": request.run_id,
                        "newsflow.run_key": request.run_key,
                        "newsflow.rewrite": "updates",
                        "newsflow.rows": str(source.num_rows),
                    },
                    max_commit_retries=0,
                    app_transactions=[Transaction(app_id, 1, last_updated=_now_ms())],
                ),
                post_commithook_properties=RUN_COMMIT_HOOKS,
            ).when_matched_update(
                updates=updates, predicate="t.content_sha256 <> s.content_sha256"
            ).execute()
            return True

        if not until_committed(f"the updates of run {request.run_id}", attempt):
            return
        markers = {}
        for part in parts:
            rows = read_part(self.store, part, columns=KEY_COLUMNS)
            for key, marker in keys_of_rows(rows, None).items():
                day = request.update_targets.get(marker.article_id)
                if day:
                    markers[key] = Marker(marker.article_id, day, marker.content_sha256)
        self.keys.mark(markers, replace=True)  # the new bodies' hashes

    def _update_rows(
        self, request: CommitRequest, parts: list[PartInfo], target: pa.Schema
    ) -> pa.Table:
        """The staged new versions, one per article, each with the partition of its row."""
        tables = []
        seen: set[str] = set()
        for part in parts:
            rows = with_sources(read_part(self.store, part), request.sources)
            keep = []
            for i, aid in enumerate(rows["article_id"].to_pylist()):
                if aid in request.update_targets and aid not in seen:
                    seen.add(aid)
                    keep.append(i)
            rows = rows.take(keep)
            days = [
                date.fromisoformat(request.update_targets[a])
                for a in rows["article_id"].to_pylist()
            ]
            tables.append(conform(rows, pa.array(days, pa.date32()), target))
        return pa.concat_tables(tables) if tables else target.empty_table()

    def _drop_staging(self, run_key: str) -> None:
        """Staging of a published run is garbage: its own parts and any other attempt's."""
        for key in list(self.store.list(f"{STAGING}{run_key}/")):
            self.store.delete(key)


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


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _finish_report(request: CommitRequest, accepted: set[str], dropped: int, version: int) -> None:
    """What only the commit knows goes into the run report it stores with itself."""
    finished = datetime.now(UTC)
    latencies = [
        finished.timestamp() - request.published_at[a]
        for a in accepted
        if a in request.published_at
    ]
    request.report.update(
        freshness_seconds=freshness(latencies),
        articles_written=len(accepted),
        articles_updated=len(request.update_targets),
        duplicates_dropped_at_commit=dropped,
        dates_touched=(
            sorted(set(request.index_dates)) if accepted or request.update_targets else []
        ),
        partitions=_dates(request, accepted),
        table_version=version,
        already_committed=False,
        finished_at=finished.isoformat(),
    )


def _metadata(request: CommitRequest) -> dict[str, str]:
    """The commit's own record of the run, from its finished report."""
    report = request.report
    return {
        "newsflow.run_id": request.run_id,
        "newsflow.run_key": request.run_key,
        "newsflow.articles": str(report["articles_written"]),
        "newsflow.duplicates_dropped": str(report["duplicates_dropped_at_commit"]),
        "newsflow.dates": json.dumps(report["partitions"]),
        "newsflow.index_dates": json.dumps(report["dates_touched"]),
        "newsflow.report": json.dumps(report, sort_keys=True),
    }


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


def _dates(request: CommitRequest, accepted: set[str]) -> list[str]:
    if not accepted:
        return []
    return sorted({p.ingest_date for p in request.parts if p.kind == ARTICLES})
