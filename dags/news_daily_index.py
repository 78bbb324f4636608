"""
### news_daily_index

Rebuilds the daily latest-news index (`index/date=D/latest-news.{parquet,json,xml,html}`)
for exactly the days a `news_ingest` run touched (from the `newsflow_articles` asset
events that triggered it), and every day at 00:30 UTC for the previous day, which
finalizes it. A manual run can name days in the `dates` param. Emits `newsflow_index`.

**When it fails.** Rebuilding is deterministic and idempotent: clear the task and it
writes the same files. Each file is replaced atomically, so readers never see a
half-written index. A failure here is the store's (reachability, permissions): check the
`newsflow_s3` connection.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

import newsflow_airflow as nf

log = logging.getLogger("newsflow")
DEFAULT_ARGS = nf.default_args(timeout=timedelta(minutes=20))


def days_to_build(
    params: dict[str, Any], events: dict[Any, list[Any]] | None, logical: datetime | None
) -> list[date]:
    """Param dates first; else the days named by the triggering asset events; else (the
    daily schedule) the day before the run's logical date."""
    if params.get("dates"):
        return sorted({date.fromisoformat(d) for d in params["dates"]})
    days = {
        date.fromisoformat(d)
        for event_list in (events or {}).values()
        for event in event_list
        for d in ((getattr(event, "extra", None) or {}).get("dates") or [])
    }
    if not days:
        when = logical or datetime.now(UTC)
        days = {when.astimezone(UTC).date() - timedelta(days=1)}
    return sorted(days)


@dag(
    dag_id="news_daily_index",
    description="Rebuilds the daily latest-news index for the days new articles touched",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(
            os.environ.get("NEWSFLOW_INDEX_SCHEDULE", "30 0 * * *"), timezone="UTC"
        ),
        assets=[nf.ARTICLES],
    ),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "index"],
    doc_md=__doc__,
    params={"dates": Param([], type="array", description="YYYY-MM-DD days to rebuild.")},
)
def news_daily_index() -> None:
    @task(
        outlets=[nf.INDEX],
        doc_md="Rebuilds the index for the days to build and emits "
        "newsflow_index with those days in its extra.",
    )
    def rebuild(
        params: dict[str, Any] | None = None,
        triggering_asset_events: Any = None,
        logical_date: datetime | None = None,
        outlet_events: Any = None,
    ) -> list[str]:
        from ingest.index import build

        days = days_to_build(params or {}, triggering_asset_events, logical_date)
        with nf.engine_errors():
            results = build(nf.store(), days)
        for result in results:
            log.info("%s: %d stories (%d merged)", result.day, result.stories,
                     result.copies_merged)  # fmt: skip
        built = [d.isoformat() for d in days]
        outlet_events[nf.INDEX].extra = {"dates": built}
        return built

    rebuild()


news_daily_index()
