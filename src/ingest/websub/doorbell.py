"""The doorbell: a Redis pub/sub message that wakes the ingest up after a notification
is in the inbox. It carries nothing the inbox does not hold, so losing it (Redis down, no
subscriber listening) loses nothing: the scheduled run drains the inbox anyway.

Redis pub/sub is the backend Airflow's event-driven scheduling reads locally
(`MessageQueueTrigger`, providers common-messaging and redis); see the README.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "newsflow-inbox"


class Doorbell(Protocol):
    def ring(self, message: dict[str, Any]) -> bool: ...


class NoDoorbell:
    """No broker configured: the inbox waits for the next scheduled run."""

    def ring(self, message: dict[str, Any]) -> bool:
        return False


class RedisDoorbell:
    def __init__(self, url: str, channel: str = DEFAULT_CHANNEL, timeout: float = 2.0) -> None:
        import redis  # only the receiver needs it

        self.channel = channel
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    def ring(self, message: dict[str, Any]) -> bool:
        """Publish; False (logged) when Redis cannot be reached: never raises."""
        try:
            self._client.publish(self.channel, json.dumps(message, sort_keys=True))
            return True
        except Exception as exc:  # redis raises many types; the inbox already holds it
            log.warning("doorbell %s not rung: %s", self.channel, exc)
            return False


def doorbell(url: str | None, channel: str = DEFAULT_CHANNEL) -> Doorbell:
    return RedisDoorbell(url, channel) if url else NoDoorbell()
