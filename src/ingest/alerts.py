"""One-line alerts, logged and optionally posted to a webhook (Slack-style `text`, plus
the fields as JSON for anything that routes alerts)."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from ingest.health import clip_words

log = logging.getLogger(__name__)


def failure_line(
    dag_id: str,
    task_id: str,
    run_id: str,
    try_number: int,
    error: object,
    log_url: str | None = None,
) -> str:
    """What ops read first: where it failed and why, on one line, no secrets."""
    reason = clip_words(str(error), 300) if error else "unknown error"
    line = f"newsflow FAILED {dag_id}.{task_id} run={run_id} try={try_number}: {reason}"
    return f"{line} log={log_url}" if log_url else line


def notify(
    line: str, webhook_url: str | None, fields: dict[str, Any] | None = None, timeout: float = 10.0
) -> bool:
    """Log the line; POST {"text": line, **fields} to the webhook if one is set. Never
    raises: a broken alert channel must not hide the original failure."""
    log.error(line)
    if not webhook_url:
        return False
    body = json.dumps({"text": line, **(fields or {})}, default=str).encode()
    request = urllib.request.Request(
        webhook_url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except Exception as exc:
        log.warning("alert webhook failed: %s", exc)
        return False
