"""Feed state in the store: conditional-GET validators and health counters.

All feeds' state is one JSON object, `_state/feeds.json`: a run reads it once and its
commit writes it once, whether it polled 3 feeds or 10,000 (one object per feed made a run
cost a request per feed). It is written only by a commit's publication, so validators never
run ahead of the articles they stand for: a crash before the commit means the next poll
refetches the feed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from ingest.store import Store

log = logging.getLogger(__name__)

FEEDS = "_state/feeds.json"
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
    # entries dated up to here were checked for updates (advances with the validators:
    # only when every entry of the poll got a final outcome)
    checked_at: str | None = None
    next_due_at: str | None = None  # adaptive polling: not polled before this (ingest.polling)
    poll_interval: float | None = None  # seconds, the interval that set next_due_at
    # update rechecks (ingest.polling.next_state): where a capped backlog stopped
    # ("<updated ISO> <link key>"), how many runs in a row found every recheck unchanged,
    # and no rechecks before recheck_after (a source whose dates move without its pages)
    recheck_cursor: str | None = None
    recheck_misses: int = 0
    recheck_after: str | None = None
    # WebSub, as the source's last successful poll announced it (ingest.websub.discovery)
    websub_hub: str | None = None
    websub_topic: str | None = None

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class StateFileError(ValueError):
    """A feed-state entry that is not what this version wrote (truncated, edited, foreign)."""


_INT_FIELDS = {"consecutive_failures", "polls", "not_modified", "recheck_misses"}
_FLOAT_FIELDS = {"poll_interval"}


def parse_feed_state(data: Any, where: str) -> FeedState:
    """Type-check one feed's entry; StateFileError names the file, feed and field."""
    if not isinstance(data, dict):
        raise StateFileError(f"{where}: expected a JSON object")
    values: dict[str, Any] = {}
    for f in fields(FeedState):
        if f.name not in data:
            continue
        value = data[f.name]
        want: tuple[type, ...] = (
            (int,) if f.name in _INT_FIELDS else (int, float) if f.name in _FLOAT_FIELDS else (str,)
        )
        if value is None and f.name not in _INT_FIELDS | {"name", "url"}:
            values[f.name] = None
        elif isinstance(value, want) and not isinstance(value, bool):
            values[f.name] = float(value) if f.name in _FLOAT_FIELDS else value
        else:
            raise StateFileError(f"{where}: '{f.name}' must be {want[-1].__name__}")
    if "name" not in values or "url" not in values:
        raise StateFileError(f"{where}: 'name' and 'url' are required")
    return FeedState(**values)


def _quarantine(store: Store, raw: bytes, problem: str) -> None:
    """Keep the unreadable file aside (nothing is lost) so the feeds can start afresh.
    Named by its content: the same bad file is kept once however often it is read."""
    aside = f"{QUARANTINE}feeds.json.{hashlib.sha256(raw).hexdigest()[:16]}"
    if store.put_bytes(aside, raw, if_absent=True):
        log.warning("%s; the affected feeds start afresh; the file is kept as %s", problem, aside)


@dataclass
class FeedStateFile:
    """What `_state/feeds.json` holds: the readable entries and what is wrong with the
    rest (None when nothing is), so readers can report damage without repairing it."""

    states: dict[str, FeedState]
    raw: bytes | None = None
    problem: str | None = None


def read_feed_states(store: Store) -> FeedStateFile:
    """Read the state without writing anything: what read-only commands (`status`) use."""
    raw = store.get_bytes(FEEDS)
    if raw is None:
        return FeedStateFile({})
    try:
        doc = json.loads(raw)
    except ValueError as exc:  # also a UnicodeDecodeError
        return FeedStateFile({}, raw, f"not JSON ({exc})")
    entries = doc.get("feeds") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        return FeedStateFile({}, raw, "no 'feeds' object")
    states: dict[str, FeedState] = {}
    problems = []
    for name, entry in entries.items():
        try:
            states[name] = parse_feed_state(entry, f"feed {name!r}")
        except StateFileError as exc:
            problems.append(str(exc))
    more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
    return FeedStateFile(states, raw, "; ".join(problems[:3]) + more if problems else None)


def load_feed_states(store: Store) -> dict[str, FeedState]:
    """Every feed's state by name, for a run: an unreadable file or entry costs those feeds
    their validators and counters for one poll, never the run, and the file is kept aside
    under `_state/quarantine/`."""
    read = read_feed_states(store)
    if read.problem is not None and read.raw is not None:
        _quarantine(store, read.raw, f"feed state {FEEDS} is unreadable ({read.problem})")
    return read.states


def state_for(states: dict[str, FeedState], name: str, url: str) -> FeedState:
    """This feed's state; a feed that moved loses the old URL's validators."""
    state = states.get(name)
    if state is None:
        return FeedState(name=name, url=url)
    if state.url != url:
        state.url, state.etag, state.last_modified = url, None, None
    return state


def write_feed_states(store: Store, updates: dict[str, dict[str, Any]]) -> None:
    """Merge this run's feeds into the one state object: one read, at most one write."""
    if not updates:
        return
    current = {name: as_dict(s) for name, s in load_feed_states(store).items()}
    merged = {**current, **updates}
    if merged == current:
        return
    body = json.dumps({"feeds": dict(sorted(merged.items()))}, sort_keys=True)
    store.put_bytes(FEEDS, body.encode())


def as_dict(state: FeedState) -> dict[str, Any]:
    return asdict(state)
