"""
### news_ingest

Polls every configured feed, fetches new articles, extracts them and commits them as
Parquet to the store, exactly once. Feeds are split into shards polled in parallel
(mapped `ingest_shard` tasks); `commit` then makes the whole run visible in one step and,
when it committed new articles, `announce` emits the `newsflow_articles` asset event
(its extra names the index days touched) that triggers `news_daily_index`.

**When it fails.** Retries are automatic (exponential backoff). Re-running, clearing or
retrying any task is safe: a shard retry stages again under a new attempt, and the commit
is idempotent per run id, so no row is ever duplicated or lost. A failing *feed* does not
fail the DAG: see the run summary in the `commit` log / XCom, or `ingest status --store
URI` for failing and stale feeds. A failing *task* means the store, the feeds file or the
workers are the problem: the log's last line says which.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import newsflow_airflow as nf
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException

DEFAULT_ARGS = nf.default_args(timeout=timedelta(minutes=30))


@dag(
    dag_id="news_ingest",
    schedule=os.environ.get("NEWSFLOW_INGEST_SCHEDULE", "*/30 * * * *"),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "ingest"],
    doc_md=__doc__,
    params={
        "feeds": Param([], type="array", description="Only these feed names (empty: all)."),
        "shards": Param(
            4,
            type="integer",
            minimum=1,
            maximum=64,
            description="Parallel mapped tasks the feeds are split into.",
        ),
    },
)
def news_ingest() -> None:
    @task(
        doc_md="Reads the feeds file and splits the feeds into shards. Fails on a bad "
        "feeds file (the log names the entry): fix the file and clear the task."
    )
    def plan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from ingest.config import load_feeds
        from ingest.pipeline import split_feeds

        params = params or {}
        feeds = [f for f in load_feeds(nf.feeds_file()) if f.enabled]
        wanted = set(params.get("feeds") or [])
        if wanted:
            unknown = wanted - {f.name for f in feeds}
            if unknown:
                raise ValueError(f"unknown feed names in params: {sorted(unknown)}")
            feeds = [f for f in feeds if f.name in wanted]
        shards = split_feeds(feeds, max(1, min(int(params.get("shards", 4)), len(feeds))))
        return [
            {"shard": k, "count": len(shards), "feeds": [f.name for f in s]}
            for k, s in enumerate(shards)
        ]

    @task(
        doc_md="Polls this shard's feeds and stages their articles (not yet visible). "
        "Safe to retry: a new attempt stages afresh and only one attempt is committed."
    )
    def ingest_shard(spec: dict[str, Any], run_id: str | None = None) -> dict[str, Any]:
        from ingest.config import Settings, load_feeds
        from ingest.pipeline import Run

        names = set(spec["feeds"])
        feeds = [f for f in load_feeds(nf.feeds_file()) if f.name in names]
        # fork: Airflow's task runner is the main module, which workers must not re-import
        settings = Settings.from_env(progress=False, mp_start_method="fork")
        report = Run(nf.store(), feeds, settings, run_id=run_id, shard=spec["shard"]).stage()
        if report is None:
            return {"shard": spec["shard"], "count": spec["count"], "already_committed": True}
        return {
            "shard": spec["shard"],
            "count": spec["count"],
            "entries_seen": report.entries_seen,
            "rejects": dict(report.rejects),
        }

    @task(
        doc_md="Commits every shard's staged articles in one step (exactly once) and "
        "returns the run summary. Idempotent: re-running it changes nothing."
    )
    def commit(shards: list[dict[str, Any]], run_id: str | None = None) -> dict[str, Any]:
        from ingest.pipeline import commit_run

        count = shards[0]["count"] if shards else 0
        if count == 0:
            raise AirflowSkipException("no feeds to ingest")
        report = commit_run(nf.store(), run_id, shards=count)
        print(report.summary())
        return report.to_dict()

    @task(
        outlets=[nf.ARTICLES],
        doc_md="Emits the newsflow_articles asset event when the "
        "run committed new articles; skipped otherwise (no index rebuild needed).",
    )
    def announce(report: dict[str, Any], outlet_events: Any = None) -> list[str]:
        if not report.get("articles_written"):
            raise AirflowSkipException("no new articles: no asset event")
        outlet_events[nf.ARTICLES].extra = {
            "dates": report["dates_touched"],
            "run_id": report["run_id"],
            "articles": report["articles_written"],
        }
        return report["dates_touched"]

    announce(commit(ingest_shard.expand(spec=plan())))


news_ingest()
