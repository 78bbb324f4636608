"""Defaults every newsflow DAG shares."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from newsflow_airflow.callbacks import on_failure


def default_args(timeout: timedelta) -> dict[str, Any]:
    """Owner, retries with exponential backoff (from NEWSFLOW_RETRY_DELAY_SECONDS, default
    30), a per-task timeout and the alert callback."""
    return {
        "owner": "newsflow",
        "retries": 3,
        "retry_delay": timedelta(seconds=float(os.environ.get("NEWSFLOW_RETRY_DELAY_SECONDS", 30))),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timeout,
        "on_failure_callback": on_failure,
    }
