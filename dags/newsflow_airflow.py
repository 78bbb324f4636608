"""Airflow glue shared by the newsflow DAGs: configuration, error policy, the failure
callback and metrics.

Kept apart from the engine (src/ingest never imports Airflow). Configuration, in order:
Airflow Variables `newsflow_store_uri`, `newsflow_feeds_file`, `newsflow_alert_webhook`,
then environment variables NEWSFLOW_STORE_URI, NEWSFLOW_FEEDS_FILE, NEWSFLOW_ALERT_WEBHOOK.
S3 endpoint and credentials come from the Airflow Connection NEWSFLOW_S3_CONN_ID
(default `newsflow_s3`, type aws: login = access key, password = secret key,
extra {"endpoint_url": ..., "region_name": ...}); without it, boto3's AWS_* variables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Connection, Variable
from airflow.sdk.exceptions import AirflowFailException

from ingest import alerts, errors
from ingest.config import ConfigError
from ingest.store import S3Credentials, Store, open_store

log = logging.getLogger(__name__)

DEFAULT_STORE = "s3://newsflow/lake"
STORE_URI = os.environ.get("NEWSFLOW_STORE_URI", DEFAULT_STORE).rstrip("/")
# The assets name the store's data; their URIs are fixed when the DAG files are parsed.
ARTICLES = Asset(name="newsflow_articles", uri=f"{STORE_URI}/articles/")
INDEX = Asset(name="newsflow_index", uri=f"{STORE_URI}/index/")


def setting(name: str, env: str, default: str | None = None) -> str | None:
    value = Variable.get(name, default=None)
    return value if value not in (None, "") else os.environ.get(env, default)


def store() -> Store:
    uri = setting("newsflow_store_uri", "NEWSFLOW_STORE_URI", DEFAULT_STORE)
    assert uri is not None
    credentials = None
    if uri.startswith("s3://"):
        conn_id = os.environ.get("NEWSFLOW_S3_CONN_ID", "newsflow_s3")
        try:
            conn = Connection.get(conn_id)
        except Exception:
            conn = None
        if conn is not None:
            extra = conn.extra_dejson or {}
            credentials = S3Credentials(
                access_key=conn.login or None,
                secret_key=conn.password or None,
                endpoint_url=extra.get("endpoint_url") or None,
                region=extra.get("region_name") or None,
            )
    return open_store(uri, credentials)


def feeds_file() -> str:
    path = setting("newsflow_feeds_file", "NEWSFLOW_FEEDS_FILE")
    if not path:
        raise ConfigError("set the Airflow Variable newsflow_feeds_file or NEWSFLOW_FEEDS_FILE")
    return path


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


def webhook() -> str | None:
    return setting("newsflow_alert_webhook", "NEWSFLOW_ALERT_WEBHOOK")


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


def threshold(params: dict[str, Any], name: str, default: float | None) -> float | None:
    """A health threshold: the run's Param if given, else the Variable `newsflow_<name>`,
    else the default. An empty Variable or "off" disables the check."""
    value = params.get(name)
    if value is None:
        value = Variable.get(f"newsflow_{name}", default=None)
        if value is None:
            return default
    if isinstance(value, str):
        if value.strip().lower() in ("", "off", "none"):
            return None
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"Variable newsflow_{name} is not a number: {value!r}") from None
    return float(value)


def emit_metrics(counters: dict[str, Any]) -> None:
    """The run's counters as gauges through Airflow's own metrics (StatsD or OpenTelemetry,
    as configured under [metrics]; nothing is sent when metrics are off)."""
    from airflow.sdk.observability.stats import Stats

    for name, value in counters.items():
        if isinstance(value, int | float):
            Stats.gauge(f"newsflow.run.{name}", value)


def default_args(timeout: timedelta) -> dict[str, Any]:
    """Owner, retries with exponential backoff, a per-task timeout and the alert callback."""
    return {
        "owner": "newsflow",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timeout,
        "on_failure_callback": on_failure,
    }
