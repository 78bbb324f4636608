"""When to poll a source again: from what the publisher says and how it behaves.

Every poll sets the source's next due time. The interval adapts to the observed pace: it
halves when a poll found new articles and grows by half when it found none, and it never
exceeds half the typical gap between the source's own entries (a source that publishes
hourly is not left for six hours). The publisher's own word is a floor: RSS `<ttl>`,
`sy:updatePeriod`/`sy:updateFrequency`, `Cache-Control: max-age` and `Expires` (a source
that says "no news for an hour" is not asked every ten minutes). Everything stays within
[INGEST_POLL_MIN_INTERVAL, INGEST_POLL_MAX_INTERVAL]. A failing source backs off
exponentially from the minimum, and a `Retry-After` (429/503) is honoured in full.

Validators (ETag, Last-Modified) and `checked_at` advance only when every entry of the
poll reached a final outcome: committed, skipped for a final reason (already seen, filtered,
robots, unchanged) or rejected permanently. Anything transient (a timeout, a 5xx, a
rate-limited host, a stopped run) keeps them where they were and keeps the source due, so
the next run sees those entries again. A backlog of update rechecks larger than a run's
cap (INGEST_MAX_RECHECKS) also keeps the source due; the cursor says where it stopped.

A source whose rechecks keep finding unchanged bodies (dates that move without the pages)
is rechecked less often: after two such runs in a row, no rechecks for an hour, doubling
up to a day; a recheck that finds a changed body ends the backoff.

Due times count from the run's start, not from the poll's own moment, so a feed polled
three minutes into a run is due again at the same point of the schedule; a run treats as
due what falls due within INGEST_POLL_SLACK of its start (scheduler jitter).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise

from ingest.state import FeedState

HINT_SCAN_BYTES = 64 * 1024  # the channel-level elements sit before the items
MAX_HINT_SECONDS = 7 * 24 * 3600.0  # a hint beyond a week is a misconfiguration, not advice
RECHECK_BACKOFF_AFTER = 2  # runs in a row whose rechecks all found the same body
RECHECK_BACKOFF_BASE = 3600.0
RECHECK_BACKOFF_MAX = 86400.0

_TTL = re.compile(rb"<ttl>\s*(\d{1,7})\s*</ttl>", re.I)
_SY_PERIOD = re.compile(rb"<sy:updatePeriod>\s*([a-z]+)\s*</sy:updatePeriod>", re.I)
_SY_FREQUENCY = re.compile(rb"<sy:updateFrequency>\s*(\d{1,6})\s*</sy:updateFrequency>", re.I)
_PERIODS = {
    b"hourly": 3600.0,
    b"daily": 86400.0,
    b"weekly": 7 * 86400.0,
    b"monthly": 30 * 86400.0,
    b"yearly": 365 * 86400.0,
}
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d{1,9})", re.I)


@dataclass(frozen=True)
class PollBounds:
    min_interval: float = 600.0
    max_interval: float = 6 * 3600.0
    slack: float = 120.0


def body_hint(body: bytes) -> float | None:
    """Seconds the feed itself says it stays unchanged: RSS `<ttl>` (minutes) or the
    syndication module's period divided by its frequency."""
    head = body[:HINT_SCAN_BYTES]
    hints = []
    if match := _TTL.search(head):
        hints.append(int(match.group(1)) * 60.0)
    if match := _SY_PERIOD.search(head):
        period = _PERIODS.get(match.group(1).lower())
        frequency = _SY_FREQUENCY.search(head)
        times = max(1, int(frequency.group(1))) if frequency else 1
        if period:
            hints.append(period / times)
    return _bounded(max(hints)) if hints else None


def header_hint(headers: dict[str, str], now: datetime | None = None) -> float | None:
    """Seconds the response may be cached: `Cache-Control: max-age`, else `Expires` minus
    the response's `Date` (or now). `no-cache`/`no-store` say nothing about pace."""
    control = headers.get("cache-control", "")
    if match := _MAX_AGE.search(control):
        return _bounded(float(match.group(1)))
    expires = _http_date(headers.get("expires"))
    if expires is not None:
        base = _http_date(headers.get("date")) or now or datetime.now(UTC)
        return _bounded((expires - base).total_seconds())
    return None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return _bounded(float(value))
    when = _http_date(value)
    if when is None:
        return None
    return _bounded((when - (now or datetime.now(UTC))).total_seconds())


def observed_pace(dates: list[datetime], newest: int = 20) -> float | None:
    """The median gap between the source's newest dated entries, or None with fewer than
    three: how often the publisher actually publishes."""
    ordered = sorted({d for d in dates if d is not None}, reverse=True)[:newest]
    if len(ordered) < 3:
        return None
    gaps = [(a - b).total_seconds() for a, b in pairwise(ordered)]
    return statistics.median(gaps)


def next_interval(
    previous: float | None,
    *,
    found_new: bool,
    hint: float | None,
    pace: float | None,
    bounds: PollBounds,
) -> float:
    """The interval after a successful poll (see the module docstring for the rules)."""
    interval = previous if previous else bounds.min_interval
    interval = interval * 0.5 if found_new else interval * 1.5
    if pace is not None:
        interval = min(interval, pace / 2)
    interval = min(max(interval, bounds.min_interval), bounds.max_interval)
    if hint is not None:
        interval = max(interval, min(hint, bounds.max_interval))
    return interval


def failure_interval(
    consecutive_failures: int, retry_after: float | None, bounds: PollBounds
) -> float:
    """Exponential backoff for a failing source; a Retry-After wins when it asks for more."""
    exponent = max(0, min(consecutive_failures - 1, 30))
    backoff = min(bounds.min_interval * 2**exponent, bounds.max_interval)
    return max(backoff, retry_after or 0.0)


def parse_stamp(value: str | None) -> datetime | None:
    """An aware time written to the feed state; None for anything else (a hand-edited
    state must not make a comparison with the run's aware times fail the run)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def is_due(next_due_at: str | None, run_started: datetime, bounds: PollBounds) -> bool:
    due = parse_stamp(next_due_at)
    if due is None:
        return True  # never polled, or an unreadable due time: it must not silence a source
    return due <= run_started + timedelta(seconds=bounds.slack)


def due_at(run_started: datetime, interval: float) -> str:
    return (run_started + timedelta(seconds=interval)).isoformat()


def _bounded(seconds: float) -> float | None:
    return min(seconds, MAX_HINT_SECONDS) if seconds > 0 else None


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PollOutcome:
    """What became of one poll and its entries, as far as the source's state cares."""

    status: str  # ok | not_modified | failed
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    retry_after: float | None = None
    hint_seconds: float | None = None
    entry_dates: tuple[datetime, ...] = ()
    new_articles: int = 0
    transient_failures: int = 0  # entries that may succeed in a later run
    rechecks_changed: int = 0
    rechecks_unchanged: int = 0
    rechecks_deferred: bool = False  # over the cap, or in recheck backoff
    backlog_cursor: str | None = None  # set when the cap cut the rechecks short
    hubs: tuple[str, ...] = ()  # WebSub hubs the source announced (first is used)
    topic: str | None = None  # its WebSub topic (rel=self)


def recheck_backoff(misses: int) -> float:
    """Seconds without rechecks after `misses` runs in a row of unchanged rechecks."""
    if misses < RECHECK_BACKOFF_AFTER:
        return 0.0
    exponent = min(misses - RECHECK_BACKOFF_AFTER, 30)
    return min(RECHECK_BACKOFF_BASE * 2**exponent, RECHECK_BACKOFF_MAX)


def rechecks_paused(state: FeedState, run_started: datetime) -> bool:
    until = parse_stamp(state.recheck_after)
    return until is not None and until > run_started


def next_state(
    state: FeedState,
    outcome: PollOutcome,
    *,
    run_started: datetime,
    now: datetime,
    bounds: PollBounds,
) -> FeedState:
    """The source's state after this poll (a new object; `state` is left as it was)."""
    state = replace(state)
    stamp = now.isoformat()
    state.polls += 1
    state.last_polled_at = stamp
    state.last_status = outcome.status
    if outcome.status == "failed":
        state.consecutive_failures += 1
        state.last_error = outcome.error
        backoff = failure_interval(state.consecutive_failures, outcome.retry_after, bounds)
        state.next_due_at = due_at(run_started, backoff)
        return state
    state.consecutive_failures = 0
    state.last_error = None
    state.last_success_at = stamp
    if outcome.status == "not_modified":
        state.not_modified += 1
    complete = outcome.transient_failures == 0 and not outcome.rechecks_deferred
    if outcome.status == "ok":
        state.websub_hub = outcome.hubs[0] if outcome.hubs else None
        state.websub_topic = outcome.topic
        if complete:
            state.etag, state.last_modified = outcome.etag, outcome.last_modified
            state.checked_at = stamp
            state.recheck_cursor = None
        elif outcome.transient_failures == 0 and outcome.backlog_cursor is not None:
            state.recheck_cursor = outcome.backlog_cursor  # a failed batch is done again
    if outcome.rechecks_changed:
        state.recheck_misses, state.recheck_after = 0, None
    elif outcome.rechecks_unchanged:
        state.recheck_misses += 1
        pause = recheck_backoff(state.recheck_misses)
        state.recheck_after = due_at(run_started, pause) if pause else None
    if outcome.new_articles:
        state.last_new_article_at = stamp
    state.poll_interval = next_interval(
        state.poll_interval,
        found_new=outcome.new_articles > 0,
        hint=outcome.hint_seconds,
        pace=observed_pace(list(outcome.entry_dates)),
        bounds=bounds,
    )
    backlog = outcome.backlog_cursor is not None and outcome.rechecks_deferred
    if outcome.transient_failures or backlog:
        state.next_due_at = run_started.isoformat()  # due again in the very next run
    else:
        state.next_due_at = due_at(run_started, state.poll_interval)
    return state
