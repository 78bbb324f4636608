"""
### news_reextract

Re-runs today's extraction over the archived raw pages (WARC, no network) and updates the
articles whose extracted columns change, in place (`ingest reextract`). Manual: trigger it
after an extraction improvement, with the ingest-date range (`from`, `to`) and optionally
`older_than` (only rows made by extraction rules older than that version). One mapped
`reextract_day` task per ingest-date partition, then `announce` emits the
`newsflow_articles` asset event naming the index days whose stories changed, so
`news_daily_index` rebuilds exactly those.

**When it fails.** Every task is idempotent and resumable: a day already re-extracted is
unchanged the second time (or, with `older_than`, no longer selected). Clear and retry.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

import newsflow_airflow as nf

log = logging.getLogger("newsflow")
DEFAULT_ARGS = nf.default_args(timeout=timedelta(hours=6))


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


@dag(
    dag_id="news_reextract",
    description="Re-extracts archived raw pages (no network) and updates changed articles",
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "reextract"],
    doc_md=__doc__,
    params={
        "from": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First ingest date (YYYY-MM-DD); empty: the first.",
        ),
        "to": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last ingest date (YYYY-MM-DD); empty: the last.",
        ),
        "older_than": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Only rows made by extraction rules older than this.",
        ),
    },
)
def news_reextract() -> None:
    @task(doc_md="The ingest-date partitions in the range: one mapped task each.")
    def days(params: dict[str, Any] | None = None) -> list[str]:
        from ingest.lake import Lake
        from ingest.lake.tables import partition_days

        params = params or {}
        with nf.engine_errors():
            found = partition_days(
                Lake(nf.store()).articles(), _day(params.get("from")), _day(params.get("to"))
            )
        if not found:
            raise AirflowSkipException("no ingest days in the range")
        return found

    @task(
        map_index_template="{{ day_label }}",
        doc_md="Re-extracts one ingest day; returns the index days whose stories changed.",
    )
    def reextract_day(day: str, params: dict[str, Any] | None = None) -> list[str]:
        from ingest.reextract import reextract

        get_current_context()["day_label"] = day  # type: ignore[typeddict-unknown-key]
        params = params or {}
        settings = nf.engine_settings()
        with nf.engine_errors():
            result = reextract(
                nf.store(),
                start=date.fromisoformat(day),
                end=date.fromisoformat(day),
                older_than=params.get("older_than"),
                workers=settings.workers,
                extract_timeout=settings.extract_timeout,
                start_method=settings.mp_start_method,
            )
        log.info("%s", result.summary())
        return sorted(result.index_dates)

    @task(
        outlets=[nf.ARTICLES],
        doc_md="Emits newsflow_articles with the index days to rebuild; skipped when "
        "nothing changed.",
    )
    def announce(touched: list[list[str]], outlet_events: Any = None) -> list[str]:
        dates = sorted({d for day in touched for d in day})
        if not dates:
            raise AirflowSkipException("no article changed: nothing to rebuild")
        outlet_events[nf.ARTICLES].extra = {"dates": dates, "reextract": True}
        return dates

    announce(reextract_day.expand(day=days()))


news_reextract()
