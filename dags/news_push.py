"""
### news_push

Started by events, not by the clock: each WebSub notification the receiver accepts is
written to the store's inbox, then a message on the Redis doorbell wakes the triggerer,
whose `AssetWatcher` turns it into a `newsflow_inbox` asset event, which starts this DAG.

* `drain` runs the engine on what the inbox holds (`ingest run --push-only`): fat pings are
  read like a poll of their source, thin pings poll their source now; the pages are
  fetched, extracted and committed exactly once, and an inbox item is consumed only by the
  commit that contains its articles.
* `announce` emits `newsflow_articles` (the daily index follows), as `news_ingest` does.

One run at a time: notifications arriving during a run queue one more run, so a burst of
a thousand becomes a few runs. The doorbell is only a wake-up: a ring lost (Redis or the
triggerer down) delays nothing past the next `news_ingest`, which drains the inbox too.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

import newsflow_airflow as nf
from newsflow_airflow.push import INBOX

DEFAULT_ARGS = nf.default_args(timeout=timedelta(minutes=30))
# a news_ingest run holds the store; wait for it rather than fail (its run drains too)
LEASE_WAIT = float(os.environ.get("NEWSFLOW_PUSH_LEASE_WAIT", "900"))


@dag(
    dag_id="news_push",
    description="Ingests what WebSub notifications brought, as soon as they arrive",
    schedule=[INBOX],
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "ingest", "push"],
    doc_md=__doc__,
)
def news_push() -> None:
    @task(
        doc_md="Ingests the inbox's notifications (and polls the sources thin pings named) "
        "and commits them once. Safe to retry: the commit is idempotent per run id."
    )
    def drain(run_id: str | None = None, ti: Any = None) -> dict[str, Any]:
        from ingest.config import load_feeds
        from ingest.run import run

        with nf.engine_errors():
            settings = replace(nf.engine_settings(), push_only=True, lease_wait=LEASE_WAIT)
            report = run(nf.store(), load_feeds(nf.feeds_file()), settings, run_id=run_id)
        return nf.report_committed(report, ti)

    @task(
        outlets=[nf.ARTICLES],
        doc_md="Emits the newsflow_articles asset event when the run committed new or "
        "updated articles; skipped otherwise.",
    )
    def announce(report: dict[str, Any], outlet_events: Any = None) -> list[str]:
        outlet_events[nf.ARTICLES].extra = nf.articles_event(report)
        return report["dates_touched"]

    announce(drain())


news_push()
