"""Adaptive polling's rules, pure: publisher hints, intervals, backoff, when a source is due,
and the feed state a poll leads to."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ingest import polling
from ingest.polling import PollBounds
from ingest.state import FeedState

BOUNDS = PollBounds(min_interval=600, max_interval=6 * 3600, slack=120)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_publisher_hints_from_the_feed_and_the_response() -> None:
    assert polling.body_hint(b"<rss><channel><ttl>45</ttl>") == 45 * 60
    sy = b"<sy:updatePeriod>daily</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>"
    assert polling.body_hint(sy) == 43200
    assert polling.body_hint(b"<sy:updatePeriod>hourly</sy:updatePeriod>") == 3600
    assert polling.body_hint(b"<rss><ttl>lots</ttl>") is None
    assert polling.body_hint(b"x" * polling.HINT_SCAN_BYTES + b"<ttl>5</ttl>") is None
    assert polling.body_hint(b"<ttl>9999999</ttl>") == polling.MAX_HINT_SECONDS
    assert polling.header_hint({"cache-control": "public, max-age=900"}) == 900
    assert polling.header_hint({"cache-control": "no-cache"}) is None
    expires = {"date": "Thu, 26 Nov 2026 12:00:00 GMT", "expires": "Thu, 26 Nov 2026 12:30:00 GMT"}
    assert polling.header_hint(expires) == 1800
    assert polling.header_hint({"expires": "0"}) is None  # "already expired" says nothing
    assert polling.retry_after_seconds("120") == 120
    assert polling.retry_after_seconds("Thu, 26 Nov 2026 13:00:00 GMT", NOW) == 3600
    assert polling.retry_after_seconds("soon") is None and polling.retry_after_seconds(None) is None


def test_interval_follows_the_pace_within_bounds_and_hints() -> None:
    step = polling.next_interval
    # nothing new: the interval grows by half, up to the maximum
    interval = None
    seen = []
    for _ in range(12):
        interval = step(interval, found_new=False, hint=None, pace=None, bounds=BOUNDS)
        seen.append(interval)
    assert seen[0] == 900 and seen[-1] == BOUNDS.max_interval
    assert seen == sorted(seen)
    # new articles: it halves, never below the minimum
    assert step(2400, found_new=True, hint=None, pace=None, bounds=BOUNDS) == 1200
    assert step(700, found_new=True, hint=None, pace=None, bounds=BOUNDS) == 600
    # a source publishing every 40 minutes is not left for hours
    assert step(20000, found_new=False, hint=None, pace=2400, bounds=BOUNDS) == 1200
    # the publisher's ttl is a floor, capped by the maximum
    assert step(600, found_new=True, hint=3600, pace=None, bounds=BOUNDS) == 3600
    assert step(600, found_new=True, hint=10**6, pace=None, bounds=BOUNDS) == BOUNDS.max_interval


def test_pace_is_the_median_gap_of_the_newest_entries() -> None:
    dates = [NOW - timedelta(hours=h) for h in (0, 1, 2, 3, 50)]
    assert polling.observed_pace(dates) == 3600
    assert polling.observed_pace(dates[:2]) is None


def test_failures_back_off_exponentially_and_retry_after_wins() -> None:
    waits = [polling.failure_interval(n, None, BOUNDS) for n in range(1, 8)]
    assert waits[:4] == [600, 1200, 2400, 4800] and waits[-1] == BOUNDS.max_interval
    assert polling.failure_interval(1, 7200, BOUNDS) == 7200
    assert polling.failure_interval(5, 10, BOUNDS) == 9600


def test_due_counts_from_the_run_start_with_slack() -> None:
    assert polling.is_due(None, NOW, BOUNDS)
    assert polling.is_due("garbage", NOW, BOUNDS)
    assert polling.is_due((NOW + timedelta(seconds=100)).isoformat(), NOW, BOUNDS)
    assert not polling.is_due((NOW + timedelta(seconds=300)).isoformat(), NOW, BOUNDS)
    assert polling.due_at(NOW, 1800) == (NOW + timedelta(minutes=30)).isoformat()


# ---------------------------------------------------------------- next_state (pure)

_POLLED = FeedState(
    name="wire",
    url="https://wire.example/f.xml",
    etag='"old"',
    last_modified="Mon, 23 Nov 2026 10:00:00 GMT",
    checked_at="2026-11-26T10:00:00+00:00",
    poll_interval=1800.0,
)


def _after(outcome: polling.PollOutcome, state: FeedState = _POLLED) -> FeedState:
    return polling.next_state(state, outcome, run_started=NOW, now=NOW, bounds=BOUNDS)


def test_validators_advance_only_when_every_entry_got_a_final_outcome() -> None:
    fresh = {"status": "ok", "etag": '"new"', "last_modified": "Thu, 26 Nov 2026 11:00:00 GMT"}
    done = _after(polling.PollOutcome(**fresh, new_articles=2))
    assert (done.etag, done.last_modified, done.checked_at) == (
        '"new"', "Thu, 26 Nov 2026 11:00:00 GMT", NOW.isoformat(),
    )  # fmt: skip
    assert datetime.fromisoformat(done.next_due_at) > NOW  # the adaptive interval applies

    # one entry failed transiently (timeout, 5xx, rate limited, a stopped worker): the
    # next poll must list it again, so nothing moves, and the very next run polls
    held = _after(polling.PollOutcome(**fresh, new_articles=1, transient_failures=1))
    assert (held.etag, held.last_modified, held.checked_at) == (
        _POLLED.etag, _POLLED.last_modified, _POLLED.checked_at,
    )  # fmt: skip
    assert held.next_due_at == NOW.isoformat()
    assert polling.is_due(held.next_due_at, NOW + timedelta(minutes=1), BOUNDS)
    assert held.last_new_article_at == NOW.isoformat()  # what did arrive still counts
    assert _POLLED.etag == '"old"'  # the input state is left as it was


def test_a_capped_recheck_backlog_holds_the_validators_and_keeps_the_source_due() -> None:
    capped = polling.PollOutcome(
        status="ok", etag='"new"', rechecks_changed=2, rechecks_deferred=True,
        backlog_cursor="2026-11-26T11:00:00+00:00 abc",
    )  # fmt: skip
    state = _after(capped)
    assert (state.etag, state.checked_at) == (_POLLED.etag, _POLLED.checked_at)
    assert state.recheck_cursor == "2026-11-26T11:00:00+00:00 abc"
    assert state.next_due_at == NOW.isoformat()
    # a transient failure in the batch: the cursor stays, so the batch is done again
    retried = _after(replace(capped, transient_failures=1, backlog_cursor="later x"), state)
    assert retried.recheck_cursor == "2026-11-26T11:00:00+00:00 abc"
    # the backlog is through: everything advances and the cursor is gone
    through = _after(polling.PollOutcome(status="ok", etag='"new"', rechecks_changed=1), state)
    assert through.recheck_cursor is None and through.checked_at == NOW.isoformat()


def test_dates_that_move_without_the_pages_back_rechecks_off() -> None:
    unchanged = polling.PollOutcome(status="ok", rechecks_unchanged=3)
    first = _after(unchanged)
    assert first.recheck_misses == 1 and first.recheck_after is None
    second = _after(unchanged, first)
    assert second.recheck_misses == 2
    assert second.recheck_after == (NOW + timedelta(hours=1)).isoformat()
    assert polling.rechecks_paused(second, NOW + timedelta(minutes=59))
    assert not polling.rechecks_paused(second, NOW + timedelta(minutes=61))
    third = _after(unchanged, second)
    assert third.recheck_after == (NOW + timedelta(hours=2)).isoformat()
    capped = polling.recheck_backoff(40)
    assert capped == polling.RECHECK_BACKOFF_MAX
    # paused: no rechecks ran, so the streak neither grows nor ends
    paused = _after(polling.PollOutcome(status="ok", etag='"x"', rechecks_deferred=True), third)
    assert (paused.recheck_misses, paused.recheck_after) == (3, third.recheck_after)
    assert (paused.checked_at, paused.etag) == (third.checked_at, third.etag)  # still owed
    assert paused.next_due_at != NOW.isoformat()  # a pause does not make it due every run
    # one changed body ends the backoff
    back = _after(polling.PollOutcome(status="ok", rechecks_changed=1, rechecks_unchanged=4), third)
    assert (back.recheck_misses, back.recheck_after) == (0, None)


def test_a_failed_poll_moves_no_validator_and_backs_off() -> None:
    failed = _after(polling.PollOutcome(status="failed", error="http_503: busy", retry_after=900))
    assert (failed.etag, failed.checked_at) == (_POLLED.etag, _POLLED.checked_at)
    assert failed.consecutive_failures == 1 and failed.last_error == "http_503: busy"
    assert failed.next_due_at == (NOW + timedelta(seconds=900)).isoformat()
