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
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from ingest.lake.keys import KeyIndex, keys_of_rows
from ingest.lake.parts import STAGING, read_part
from ingest.lake.publish import Publication
from ingest.lake.request import (
    REPORTS,
    UPDATES,
    CommitRequest,
    CommitResult,
    report_key,
    request_key,
)
from ingest.lake.tables import (
    ARTICLES,
    REJECTS,
    commit_entry,
    commit_info,
    ensure_table,
    table_schema,
)
from ingest.lake.write import append, until_committed, with_partition, with_sources
from ingest.report import freshness
from ingest.store import Store

__all__ = ["REPORTS", "UPDATES", "CommitRequest", "CommitResult", "Lake", "report_key"]

log = logging.getLogger(__name__)


class Lake:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = KeyIndex(store)
        self._articles: DeltaTable | None = None
        self.publication = Publication(store, self.keys, self.articles)

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
                self.publication.publish(CommitRequest.from_json(raw), self.result_of(version))
            self.publication.drop_staging(run_key)
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
            append(table, ARTICLES, batches, request.run_key, version, _metadata(request))
            return version, new_keys

        version, new_keys = until_committed(f"run {request.run_id}", attempt)
        if new_keys is None:
            result = self.result_of(version)
            self.publication.publish(request, result)
            return result
        self.keys.mark(new_keys)
        self.keys.advance(version)
        result = self.result_of(version)
        self.publication.publish(request, result)
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


def _finish_report(request: CommitRequest, accepted: set[str], dropped: int, version: int) -> None:
    """What only the commit knows goes into the run report it stores with itself."""
    finished = datetime.now(UTC)
    latencies = {
        a: finished.timestamp() - request.published_at[a]
        for a in accepted
        if a in request.published_at
    }
    pushed = set(request.pushed)
    request.report.update(
        freshness_seconds=freshness(latencies.values()),
        freshness_by_arrival={
            "push": freshness(v for a, v in latencies.items() if a in pushed),
            "poll": freshness(v for a, v in latencies.items() if a not in pushed),
        },
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


def _dates(request: CommitRequest, accepted: set[str]) -> list[str]:
    if not accepted:
        return []
    return sorted({p.ingest_date for p in request.parts if p.kind == ARTICLES})
