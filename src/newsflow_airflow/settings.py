"""Where the DAGs' configuration comes from, one source of truth per setting.

The store URI is a deployment setting, `NEWSFLOW_STORE_URI` (default s3://newsflow/lake):
the DAG files name their assets after it when they are parsed, and the tasks write to it.
The Airflow Variable `newsflow_store_uri` may say the same; if it says anything else the
task fails at once, since an asset naming one store while the data goes to another would
mislead every consumer. The feeds file and the alert webhook come from the Variables
`newsflow_feeds_file` / `newsflow_alert_webhook`, else NEWSFLOW_FEEDS_FILE /
NEWSFLOW_ALERT_WEBHOOK. S3 endpoint and credentials come from the Airflow Connection
NEWSFLOW_S3_CONN_ID (default `newsflow_s3`, type aws: login = access key, password =
secret key, extra {"endpoint_url": ..., "region_name": ...}); without that Connection,
boto3's AWS_* variables. A secrets backend that fails is an error, not a missing Connection.
"""

from __future__ import annotations

import os

from airflow.sdk import Connection, Variable
from airflow.sdk.exceptions import AirflowNotFoundException

from ingest.config import ConfigError
from ingest.store import S3Credentials, Store, open_store

DEFAULT_STORE = "s3://newsflow/lake"


def setting(name: str, env: str, default: str | None = None) -> str | None:
    value = Variable.get(name, default=None)
    return value if value not in (None, "") else os.environ.get(env, default)


def store_uri() -> str:
    """The store the assets name and the tasks write (no trailing slash)."""
    return os.environ.get("NEWSFLOW_STORE_URI", DEFAULT_STORE).rstrip("/")


def store() -> Store:
    uri = store_uri()
    variable = Variable.get("newsflow_store_uri", default=None)
    if variable not in (None, "") and variable.rstrip("/") != uri:
        raise ConfigError(
            f"the Airflow Variable newsflow_store_uri ({variable}) names another store than "
            f"NEWSFLOW_STORE_URI ({uri}), which the DAGs' assets name: set one of them"
        )
    credentials = s3_credentials() if uri.startswith("s3://") else None
    return open_store(uri, credentials)


def s3_credentials() -> S3Credentials | None:
    """From the Connection; None when it is not defined (boto3's own chain then)."""
    conn_id = os.environ.get("NEWSFLOW_S3_CONN_ID", "newsflow_s3")
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson or {}
    return S3Credentials(
        access_key=conn.login or None,
        secret_key=conn.password or None,
        endpoint_url=extra.get("endpoint_url") or None,
        region=extra.get("region_name") or None,
    )


def feeds_file() -> str:
    path = setting("newsflow_feeds_file", "NEWSFLOW_FEEDS_FILE")
    if not path:
        raise ConfigError("set the Airflow Variable newsflow_feeds_file or NEWSFLOW_FEEDS_FILE")
    return path


def webhook() -> str | None:
    return setting("newsflow_alert_webhook", "NEWSFLOW_ALERT_WEBHOOK")


def threshold(params: dict, name: str, default: float | None) -> float | None:
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
