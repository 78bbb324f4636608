"""What `announce` tasks put on the newsflow_articles asset event (news_ingest, news_push)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from ingest.report import RunReport


def articles_event(report: dict[str, Any]) -> dict[str, Any]:
    """The event's extra: the index days touched, the run and its counters; skips the
    task when the run committed nothing new or updated (no index rebuild needed)."""
    if not report.get("articles_written") and not report.get("articles_updated"):
        raise AirflowSkipException("no new or updated articles: no asset event")
    return {
        "dates": report["dates_touched"],
        "run_id": report["run_id"],
        "articles": report["articles_written"],
        "counters": RunReport.from_dict(report).counters(),
    }
