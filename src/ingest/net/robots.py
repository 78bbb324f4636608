"""robots.txt per origin (RFC 9309), read with protego."""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

from protego import Protego

from ingest.config import Settings
from ingest.net.errors import BlockedAddress, FetchError

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    """What robots.txt is fetched through (the run's guarded client)."""

    settings: Settings

    def get(self, url: str, **kwargs: Any) -> Any: ...


class RobotsCache:
    """robots.txt per origin, fetched once through the guarded client (RFC 9309 rules)."""

    def __init__(self, client: Fetcher) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._rules: dict[str, Protego | BlockedAddress | None] = {}
        self._pending: dict[str, threading.Event] = {}

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            done = origin in self._rules
            event = self._pending.get(origin)
            if not done and event is None:
                event = self._pending[origin] = threading.Event()
                fetch = True
            else:
                fetch = False
        if fetch:
            rules = self._load(origin)
            with self._lock:
                self._rules[origin] = rules
                self._pending.pop(origin).set()
        elif not done and event is not None:
            event.wait(self._client.settings.total_timeout + 5)
        rules = self._rules.get(origin)
        if isinstance(rules, BlockedAddress):  # the page itself would be refused the same way
            raise rules
        if rules is None:  # unreachable robots.txt: RFC 9309 says assume complete disallow
            return False
        return rules.can_fetch(url, self._client.settings.user_agent)

    def _load(self, origin: str) -> Protego | BlockedAddress | None:
        try:
            resp = self._client.get(
                origin + "/robots.txt", accept=None, max_bytes=512 * 1024, check_robots=False
            )
        except BlockedAddress as exc:
            return exc
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return Protego.parse("")  # no robots.txt: everything allowed
            log.warning("robots.txt unavailable for %s (%s): not fetching there", origin, exc)
            return None
        return Protego.parse(resp.body.decode("utf-8", errors="replace"))
