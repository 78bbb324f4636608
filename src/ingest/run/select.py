"""Which entries of a poll to fetch: a new link, a committed link whose source says it
changed (an update recheck), or a counted skip. No network: only this source's candidate
keys are looked up among the committed ones."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from ingest import ids, polling
from ingest.lake.keys import Marker
from ingest.run.ledger import Ledger, SourceRun
from ingest.sources import FUTURE_TOLERANCE, FeedEntry


class CommittedKeys(Protocol):
    """What selection needs of the committed keys (ingest.lake.KeyIndex)."""

    def committed(self, keys: Iterable[str]) -> set[str]: ...

    def read(self, key: str) -> Marker | None: ...


def select(
    source: SourceRun,
    entries: list[FeedEntry],
    committed: CommittedKeys,
    ledger: Ledger,
    *,
    started: datetime,
    max_rechecks: int,
) -> list[tuple[FeedEntry, str]]:
    """Decide per entry: fetch (entry, link key), or a counted skip in the ledger."""
    feed = source.feed
    oldest = started - timedelta(days=feed.max_age_days) if feed.max_age_days else None
    candidates: list[tuple[FeedEntry, str]] = []
    skips: Counter[str] = Counter()
    for i, entry in enumerate(entries):
        if not entry.link or not entry.link.lower().startswith(("http://", "https://")):
            skips["no_link"] += 1
        elif feed.max_entries is not None and i >= feed.max_entries:
            skips["filtered"] += 1
        elif oldest is not None and entry.published is not None and entry.published < oldest:
            skips["filtered"] += 1
        else:
            candidates.append((entry, ids.url_key(entry.link)))
    seen = committed.committed(key for _, key in candidates)
    changed, deferred = rechecks(
        source, [(e, k) for e, k in candidates if k in seen], started, max_rechecks
    )
    markers = dict(zip(changed, map(committed.read, changed), strict=True))
    todo = []
    with ledger.lock:
        for entry, key in candidates:
            ledger.link_feeds.setdefault(key, set()).add((entry.feed, entry.feed_url))
            marker = markers.get(key)
            recheck = marker is not None and marker.ingest_date and marker.content_sha256
            if key in deferred:
                skips["recheck_deferred"] += 1
            elif key in seen and not recheck:
                skips["already_seen"] += 1
            elif key in ledger.scheduled:
                skips["duplicate_in_run"] += 1
                if key in ledger.failed_transiently:  # another source's try already failed
                    source.transient_failures += 1
            else:
                if recheck:
                    assert marker is not None
                    ledger.rechecks[key] = marker
                ledger.scheduled.add(key)
                todo.append((entry, key))
        ledger.skips.update(skips)
    return todo


def rechecks(
    source: SourceRun,
    committed: list[tuple[FeedEntry, str]],
    started: datetime,
    max_rechecks: int,
) -> tuple[list[str], set[str]]:
    """Which committed links to fetch again because their entry says they changed since
    the source was last checked: (keys to recheck, keys deferred to a later run).

    Dates beyond the future tolerance are ignored (a year-9999 `updated` would force a
    refetch every poll). At most `max_rechecks` per source per run, oldest change first,
    continuing where a capped run stopped; none while the source is in recheck backoff
    (its dates move without its pages); none at all with `max_rechecks` 0."""
    horizon = started + FUTURE_TOLERANCE
    since = polling.parse_stamp(source.checked_since)
    cursor = parse_cursor(source.state.recheck_cursor)
    due: list[tuple[datetime, str]] = []
    for entry, key in committed:
        updated = entry.updated
        if updated is None or since is None or not since < updated <= horizon:
            continue
        if cursor is not None and (updated, key) <= cursor:
            continue  # rechecked by an earlier run of this backlog
        due.append((updated, key))
    if not due or max_rechecks == 0:
        return [], set()
    due.sort()
    if polling.rechecks_paused(source.state, started):
        source.rechecks_deferred = True
        return [], {key for _, key in due}
    now, later = due[:max_rechecks], due[max_rechecks:]
    if later:
        source.rechecks_deferred = True
        last_updated, last_key = now[-1]
        source.backlog_cursor = f"{last_updated.isoformat()} {last_key}"
    return [key for _, key in now], {key for _, key in later}


def parse_cursor(value: str | None) -> tuple[datetime, str] | None:
    """A recheck cursor "<updated ISO> <link key>"; None when absent or unreadable (the
    backlog then starts over, which costs rechecks, never updates)."""
    if not value or " " not in value:
        return None
    stamp, key = value.rsplit(" ", 1)
    when = polling.parse_stamp(stamp)
    return (when, key) if when is not None else None
