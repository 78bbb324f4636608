"""Airflow glue shared by the newsflow DAGs: configuration and the failure callback.

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
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Connection, Variable

from ingest import alerts
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
        raise ValueError("set the Airflow Variable newsflow_feeds_file or NEWSFLOW_FEEDS_FILE")
    return path


def on_failure(context: dict[str, Any]) -> None:
    """One line in the log (and to the webhook, if set) naming the task and the error."""
    ti = context.get("ti") or context.get("task_instance")
    line = alerts.failure_line(
        dag_id=getattr(ti, "dag_id", "?"),
        task_id=getattr(ti, "task_id", "?"),
        run_id=getattr(ti, "run_id", "?"),
        try_number=getattr(ti, "try_number", 0),
        error=context.get("exception"),
    )
    alerts.notify(line, setting("newsflow_alert_webhook", "NEWSFLOW_ALERT_WEBHOOK"))


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
