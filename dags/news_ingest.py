"""
### news_ingest

Polls every configured feed, fetches new articles, extracts them and commits them to the
`articles` Delta table, exactly once. Feeds are split into shards by publisher (host) and
polled in parallel (mapped `ingest_shard` tasks, labelled by their first feed); `commit`
then makes the whole run visible in one step and logs the run summary. After the commit:

* `announce` emits the `newsflow_articles` asset event (its extra names the index days
  touched and the run's counters) that triggers `news_daily_index`;
* `feed_health` checks the run's feeds against the thresholds (Params, or the Variables
  `newsflow_max_failed_feeds`, `newsflow_max_failed_percent`, `newsflow_stale_hours`,
  `newsflow_max_stale_feeds`) and, when they are crossed, posts one alert naming the
  feeds and their errors and **fails** (red in the grid; the run's data is committed and
  the index is rebuilt regardless: this task only reports).

**When a task fails.** A bad feeds file, a bad setting, a missing bucket or refused
credentials fail at once (no retries: fix and clear). Anything else is retried with
exponential backoff. Re-running, clearing or retrying any task is safe: a shard retry
stages again under a new attempt, and the commit is idempotent per run id, so no row is
ever duplicated or lost. Every failure alert carries the task log's URL.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

import newsflow_airflow as nf

log = logging.getLogger("newsflow")

DEFAULT_ARGS = nf.default_args(timeout=timedelta(minutes=30))
SHARDS = 4  # the `shards` Param's default
# feed_health's thresholds when neither the Param nor the Variable newsflow_<name> is set
HEALTH = {"max_failed_feeds": 0, "max_failed_percent": None, "stale_hours": 48,
          "max_stale_feeds": None}  # fmt: skip


@dag(
    dag_id="news_ingest",
    description="Polls the feeds, fetches and extracts new articles, commits them once",
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
            SHARDS,
            type="integer",
            minimum=1,
            maximum=64,
            description="Parallel mapped tasks the feeds are split into (at most one "
            "per publisher host).",
        ),
        "poll_all": Param(
            False,
            type="boolean",
            description="Poll every source now, also those adaptive polling says are not due.",
        ),
        "max_failed_feeds": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="feed_health fails when more feeds than this failed in the run "
            "(empty: Variable newsflow_max_failed_feeds, else 0).",
        ),
        "max_failed_percent": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            description="feed_health fails when at least this % of the feeds failed "
            "(empty: Variable newsflow_max_failed_percent, else off).",
        ),
        "stale_hours": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="A feed is stale after this long without a new article (empty: "
            "Variable newsflow_stale_hours, else 48).",
        ),
        "max_stale_feeds": Param(
            None,
            type=["null", "integer"],
            minimum=0,
            description="feed_health fails when more feeds than this are stale (empty: "
            "Variable newsflow_max_stale_feeds, else off).",
        ),
    },
)
def news_ingest() -> None:
    @task(
        doc_md="Reads the feeds file and splits the feeds into shards, one publisher (host) "
        "per shard at most. Fails at once on a bad feeds file (the log names the entry): fix "
        "the file and clear the task."
    )
    def plan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from ingest.config import ConfigError, load_feeds
        from ingest.run import split_feeds

        params = params or {}
        with nf.engine_errors():
            feeds = [f for f in load_feeds(nf.feeds_file()) if f.enabled]
            wanted = set(params.get("feeds") or [])
            if wanted:
                unknown = wanted - {f.name for f in feeds}
                if unknown:
                    raise ConfigError(f"unknown feed names in params: {sorted(unknown)}")
                feeds = [f for f in feeds if f.name in wanted]
        wanted_shards = int(params.get("shards") or SHARDS)
        shards = split_feeds(feeds, max(1, min(wanted_shards, len(feeds))))
        return [
            {
                "shard": k,
                "count": len(shards),
                "feeds": [f.name for f in s],
                "label": s[0].name + (f" +{len(s) - 1}" if len(s) > 1 else ""),
            }
            for k, s in enumerate(shards)
        ]

    @task(
        map_index_template="{{ shard_label }}",
        doc_md="Polls this shard's feeds and stages their articles (not yet visible). "
        "Safe to retry: a new attempt stages afresh and only one attempt is committed.",
    )
    def ingest_shard(
        spec: dict[str, Any], run_id: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        from ingest.config import load_feeds
        from ingest.run import Run

        get_current_context()["shard_label"] = spec.get("label", str(spec["shard"]))  # type: ignore[typeddict-unknown-key]
        names = set(spec["feeds"])
        with nf.engine_errors():
            every = load_feeds(nf.feeds_file())
            feeds = [f for f in every if f.name in names]
            settings = nf.engine_settings()
            poll_all = bool((params or {}).get("poll_all"))
            shard = spec["shard"]
            run = Run(nf.store(), feeds, settings, run_id, shard, poll_all, all_feeds=every)
            report = run.stage()
        if report is None:
            return {"shard": spec["shard"], "count": spec["count"], "already_committed": True}
        log.info(
            "shard %s staged: %d feeds, %d entries, rejects %s",
            spec.get("label"), len(feeds), report.entries_seen, dict(report.rejects) or "none",
        )  # fmt: skip
        return {
            "shard": spec["shard"],
            "count": spec["count"],
            "entries_seen": report.entries_seen,
            "rejects": dict(report.rejects),
        }

    @task(
        doc_md="Commits every shard's staged articles in one step (exactly once), logs the "
        "run summary and returns the report (XCom key `counters`: the key numbers). "
        "Idempotent: re-running it changes nothing."
    )
    def commit(
        shards: list[dict[str, Any]], run_id: str | None = None, ti: Any = None
    ) -> dict[str, Any]:
        from ingest.config import load_feeds
        from ingest.run import commit_run
        from ingest.websub.sync import sync_subscriptions

        count = shards[0]["count"] if shards else 0
        if count == 0:
            raise AirflowSkipException("no feeds to ingest")
        with nf.engine_errors():
            store = nf.store()
            report = commit_run(store, run_id, shards=count)
            # WebSub: subscribe, renew, unsubscribe (a no-op without INGEST_WEBSUB_CALLBACK)
            sync_subscriptions(store, load_feeds(nf.feeds_file()), nf.engine_settings())
        return nf.report_committed(report, ti)

    @task(
        outlets=[nf.ARTICLES],
        doc_md="Emits the newsflow_articles asset event when the run committed new or "
        "updated articles; skipped otherwise (no index rebuild needed).",
    )
    def announce(report: dict[str, Any], outlet_events: Any = None) -> list[str]:
        outlet_events[nf.ARTICLES].extra = nf.articles_event(report)
        return report["dates_touched"]

    @task(
        retries=0,
        on_failure_callback=None,  # it posts its own alert, naming the feeds
        doc_md="Checks the run's feeds against the health thresholds. When they are "
        "crossed it posts one alert naming the failed and stale feeds with their errors and "
        "fails, so the run shows red; the data is committed and indexed regardless.",
    )
    def feed_health(
        report: dict[str, Any],
        specs: list[dict[str, Any]],
        params: dict[str, Any] | None = None,
        ti: Any = None,
    ) -> dict[str, Any]:
        from ingest import alerts
        from ingest.health import run_health

        params = params or {}
        with nf.engine_errors():
            max_failed, max_percent, stale_hours, max_stale = (
                nf.threshold(params, name, default) for name, default in HEALTH.items()
            )
            verdict = run_health(
                report,
                nf.store() if max_stale is not None else None,
                feeds=[name for spec in specs for name in spec["feeds"]],
                max_failed=None if max_failed is None else int(max_failed),
                max_failed_percent=max_percent,
                stale_after=timedelta(
                    hours=HEALTH["stale_hours"] if stale_hours is None else stale_hours
                ),
                max_stale=None if max_stale is None else int(max_stale),
            )
        result = verdict.to_dict()
        ti.xcom_push(key="health", value=result)
        if not verdict.unhealthy:
            log.info("feed health: %s", verdict.message())
            return result
        fields = nf.task_fields(ti)
        line = (
            f"newsflow FEEDS UNHEALTHY {fields['dag_id']} run={fields['run_id']}: "
            f"{verdict.message()}" + (f" log={fields['log_url']}" if fields["log_url"] else "")
        )
        alerts.notify(line, nf.webhook(), {**fields, "kind": "feed_health", **result})
        raise AirflowFailException(verdict.message())

    specs = plan()
    report = commit(ingest_shard.expand(spec=specs))
    announce(report)
    feed_health(report, specs)


news_ingest()
