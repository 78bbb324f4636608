"""Per-feed state in the store: conditional-GET validators and health counters.

State is written only by a commit's publish step, so validators never run ahead of the
articles they stand for: a crash before commit means the next poll refetches the feed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from ingest.store import Store

log = logging.getLogger(__name__)

FEEDS = "_state/feeds/"
QUARANTINE = "_state/quarantine/"


@dataclass
class FeedState:
    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    last_polled_at: str | None = None
    last_status: str | None = None  # ok | not_modified | failed
    last_error: str | None = None
    last_success_at: str | None = None
    last_new_article_at: str | None = None
    consecutive_failures: int = 0
    polls: int = 0
    not_modified: int = 0

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class StateFileError(ValueError):
    """A feed-state file that is not what this version wrote (truncated, edited, foreign)."""


_INT_FIELDS = {"consecutive_failures", "polls", "not_modified"}


def parse_feed_state(raw: bytes, key: str) -> FeedState:
    """Decode and type-check one state file; StateFileError names the file and the fault."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{key}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise StateFileError(f"{key}: expected a JSON object")
    values: dict[str, Any] = {}
    for f in fields(FeedState):
        if f.name not in data:
            continue
        value = data[f.name]
        want = int if f.name in _INT_FIELDS else str
        if value is None and f.name not in _INT_FIELDS | {"name", "url"}:
            values[f.name] = None
        elif isinstance(value, want) and not isinstance(value, bool):
            values[f.name] = value
        else:
            raise StateFileError(f"{key}: '{f.name}' must be {want.__name__}")
    if "name" not in values or "url" not in values:
        raise StateFileError(f"{key}: 'name' and 'url' are required")
    return FeedState(**values)


def _quarantine(store: Store, key: str, error: StateFileError) -> None:
    """Keep the unreadable file aside (nothing is lost) so the feed can start afresh."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = f"{QUARANTINE}{key.rsplit('/', 1)[-1]}.{stamp}"
    log.warning("%s; the feed starts afresh and the file is kept as %s", error, aside)
    store.copy(key, aside)


def read_feed_state(store: Store, name: str, url: str) -> FeedState:
    """The feed's state; an unreadable file costs this feed its validators, nothing more."""
    key = f"{FEEDS}{name}.json"
    raw = store.get_bytes(key)
    if raw is None:
        return FeedState(name=name, url=url)
    try:
        state = parse_feed_state(raw, key)
    except StateFileError as exc:
        _quarantine(store, key, exc)
        return FeedState(name=name, url=url)
    if state.url != url:  # the feed moved: its validators belong to the old URL
        state.url, state.etag, state.last_modified = url, None, None
    return state


def read_all_feed_states(store: Store) -> list[FeedState]:
    """Every readable state; unreadable files are reported in the log and skipped."""
    states = []
    for key in store.list(FEEDS):
        raw = store.get_bytes(key)
        if not raw:
            continue
        try:
            states.append(parse_feed_state(raw, key))
        except StateFileError as exc:
            log.warning("%s (skipped)", exc)
    return states


def write_feed_states(store: Store, states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        store.put_bytes(f"{FEEDS}{name}.json", json.dumps(state, sort_keys=True).encode())


def as_dict(state: FeedState) -> dict[str, Any]:
    return asdict(state)
