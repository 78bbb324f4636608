"""One-line failure summaries, logged and optionally posted to a webhook (Slack-style)."""

from __future__ import annotations

import json
import logging
import urllib.request

log = logging.getLogger(__name__)


def failure_line(dag_id: str, task_id: str, run_id: str, try_number: int, error: object) -> str:
    """What ops read first: where it failed and why, on one line, no secrets."""
    reason = " ".join(str(error).split())[:300] if error else "unknown error"
    return f"newsflow FAILED {dag_id}.{task_id} run={run_id} try={try_number}: {reason}"


def notify(line: str, webhook_url: str | None, timeout: float = 10.0) -> bool:
    """Log the line; POST {"text": line} to the webhook if one is set. Never raises:
    a broken alert channel must not hide the original failure."""
    log.error(line)
    if not webhook_url:
        return False
    body = json.dumps({"text": line}).encode()
    request = urllib.request.Request(
        webhook_url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return 200 <= response.status < 300
    except Exception as exc:
        log.warning("alert webhook failed: %s", exc)
        return False
