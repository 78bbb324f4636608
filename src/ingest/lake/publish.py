"""Publication: what a run's commit makes true besides its articles, each step idempotent
so a killed publication is finished by the next run (ingest.lake.commit.Lake.recover):
its WARC files under raw/, its rejects, the updates of committed articles, the feed state,
the report, and the end of its staging."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction

from ingest.lake import raw
from ingest.lake.keys import KEY_COLUMNS, KeyIndex, Marker, keys_of_rows
from ingest.lake.parts import STAGING, PartInfo, read_part
from ingest.lake.request import UPDATES, CommitRequest, CommitResult, report_key
from ingest.lake.tables import (
    ARTICLES,
    PARTITION,
    REJECTS,
    RUN_COMMIT_HOOKS,
    ensure_table,
    table_schema,
    writer_properties,
)
from ingest.lake.write import (
    append,
    conform,
    now_ms,
    until_committed,
    with_partition,
    with_sources,
)
from ingest.state import write_feed_states
from ingest.store import Store
from ingest.websub.inbox import Inbox


class Publication:
    def __init__(self, store: Store, keys: KeyIndex, articles: Callable[[], DeltaTable]) -> None:
        self.store = store
        self.keys = keys
        self.articles = articles  # the articles table, brought up to date

    def publish(self, request: CommitRequest, committed: CommitResult) -> None:
        """Idempotent: every step may run again after a crash with the same outcome.
        The report copy is the committed one, whichever attempt of the run won."""
        raw.publish(self.store, request.parts)  # before anything reads the new rows' records
        self._commit_rejects(request)
        self._commit_updates(request)
        write_feed_states(self.store, request.feed_states)
        Inbox(self.store).consume(request.inbox)  # only now: these articles are committed
        self.store.put_bytes(
            report_key(request.run_key, committed.report),
            json.dumps(committed.report, indent=2, sort_keys=True).encode(),
        )
        self.drop_staging(request.run_key)

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
            append(table, REJECTS, batches, request.run_key, table.version() + 1, metadata)

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
        updates = _merge_updates(target)
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
                    app_transactions=[Transaction(app_id, 1, last_updated=now_ms())],
                ),
                post_commithook_properties=RUN_COMMIT_HOOKS,
            ).when_matched_update(
                updates=updates, predicate="t.content_sha256 <> s.content_sha256"
            ).execute()
            return True

        if not until_committed(f"the updates of run {request.run_id}", attempt):
            return
        markers = self._update_markers(request, parts)
        self.keys.mark(markers, replace=True)  # the new bodies' hashes

    def _update_markers(self, request: CommitRequest, parts: list[PartInfo]) -> dict[str, Marker]:
        """Key markers naming the new bodies' hashes, in the rows' partitions."""
        markers = {}
        for part in parts:
            rows = read_part(self.store, part, columns=KEY_COLUMNS)
            for key, marker in keys_of_rows(rows, None).items():
                day = request.update_targets.get(marker.article_id)
                if day:
                    markers[key] = Marker(marker.article_id, day, marker.content_sha256)
        return markers

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

    def drop_staging(self, run_key: str) -> None:
        """Staging of a published run is garbage: its own parts and any other attempt's."""
        for key in list(self.store.list(f"{STAGING}{run_key}/")):
            self.store.delete(key)


def _merge_updates(target: pa.Schema) -> dict[str, str]:
    """SET clauses of the update MERGE: the new version's columns, except the article's
    identity, first source and first arrival; `sources` grows, `revision` counts up."""
    keep_target = {"article_id", "source", "feed_url", "sources", "revision", "revised_at"}
    keep_target |= {"arrival", "first_seen_at"}  # how and when the article first came
    updates = {
        f.name: f"s.{f.name}" for f in target if f.name != PARTITION and f.name not in keep_target
    }
    updates["sources"] = (
        "array_distinct(array_sort(array_concat("
        "coalesce(t.sources, make_array(t.source)), s.sources)))"
    )
    updates["revision"] = "coalesce(t.revision, 1) + 1"
    updates["revised_at"] = "s.fetched_at"
    return updates
