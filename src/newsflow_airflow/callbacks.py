"""What happens around the engine in a task: errors no retry can fix fail at once, a
failure posts one alert line, and the run's counters go out as Airflow metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from ingest import alerts, errors
from ingest.report import RunReport
from newsflow_airflow.settings import webhook

log = logging.getLogger(__name__)
RUN_LOG = logging.getLogger("newsflow")  # the run summary's records in the task log


@contextmanager
def engine_errors() -> Iterator[None]:
    """Errors no retry can fix (a bad feeds file or setting, a missing bucket, refused
    credentials) fail the task at once; everything else goes through the retries."""
    try:
        yield
    except AirflowFailException:
        raise
    except Exception as exc:
        if errors.permanent(exc):
            raise AirflowFailException(f"{exc} (not retried: retrying cannot fix it)") from exc
        raise


def task_fields(ti: Any) -> dict[str, Any]:
    """Where an alert comes from: what a webhook consumer routes and links on."""
    try:
        log_url = ti.log_url
    except Exception:  # outside a task runner (no API configured): no link, still an alert
        log_url = None
    return {
        "dag_id": getattr(ti, "dag_id", "?"),
        "task_id": getattr(ti, "task_id", "?"),
        "run_id": getattr(ti, "run_id", "?"),
        "try_number": getattr(ti, "try_number", 0),
        "map_index": getattr(ti, "map_index", -1),
        "log_url": log_url,
    }


def on_failure(context: dict[str, Any]) -> None:
    """One line in the log (and to the webhook, if set) naming the task, the error and
    the task log's URL."""
    ti = context.get("ti") or context.get("task_instance")
    fields = task_fields(ti)
    error = context.get("exception")
    line = alerts.failure_line(
        dag_id=fields["dag_id"],
        task_id=fields["task_id"],
        run_id=fields["run_id"],
        try_number=fields["try_number"],
        error=error,
        log_url=fields["log_url"],
    )
    alerts.notify(line, webhook(), {**fields, "kind": "task_failed", "error": str(error)})


def emit_metrics(counters: dict[str, Any]) -> None:
    """The run's counters as gauges through Airflow's own metrics (StatsD or OpenTelemetry,
    as configured under [metrics]; nothing is sent when metrics are off)."""
    from airflow.sdk.observability.stats import Stats

    for name, value in counters.items():
        if isinstance(value, int | float):
            Stats.gauge(f"newsflow.run.{name}", value)


def report_committed(report: RunReport, ti: Any) -> dict[str, Any]:
    """What a task that committed a run shows: the summary as log records, the counters as
    XCom `counters` and as Airflow metrics; returns the report (the task's XCom)."""
    for line in report.summary().splitlines():
        RUN_LOG.info("%s", line)
    counters = report.counters()
    ti.xcom_push(key="counters", value=counters)
    emit_metrics(counters)
    return report.to_dict()
