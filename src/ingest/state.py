"""Per-feed state in the store: conditional-GET validators and health counters.

State is written only by a commit's publish step, so validators never run ahead of the
articles they stand for: a crash before commit means the next poll refetches the feed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from ingest.store import Store

FEEDS = "_state/feeds/"


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


def read_feed_state(store: Store, name: str, url: str) -> FeedState:
    raw = store.get_bytes(f"{FEEDS}{name}.json")
    if raw is None:
        return FeedState(name=name, url=url)
    data: dict[str, Any] = json.loads(raw)
    known = {k: v for k, v in data.items() if k in FeedState.__dataclass_fields__}
    state = FeedState(**known)
    if state.url != url:  # the feed moved: its validators belong to the old URL
        state.url, state.etag, state.last_modified = url, None, None
    return state


def read_all_feed_states(store: Store) -> list[FeedState]:
    states = []
    for key in store.list(FEEDS):
        raw = store.get_bytes(key)
        if raw:
            data = json.loads(raw)
            states.append(
                FeedState(**{k: v for k, v in data.items() if k in FeedState.__dataclass_fields__})
            )
    return states


def write_feed_states(store: Store, states: dict[str, dict[str, Any]]) -> None:
    for name, state in states.items():
        store.put_bytes(f"{FEEDS}{name}.json", json.dumps(state, sort_keys=True).encode())


def as_dict(state: FeedState) -> dict[str, Any]:
    return asdict(state)
