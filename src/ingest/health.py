"""Feed health from the state in the store: which feeds fail, which went stale, which were
removed from the feeds file; and the verdict on one run's feeds that alerts are made of."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.state import FeedState, read_feed_states
from ingest.store import Store
from ingest.websub.subscriptions import Status

ERROR_COLUMN_CHARS = 80


@dataclass(frozen=True)
class FeedHealth:
    state: FeedState
    failing: bool
    stale: bool
    removed: bool = False  # in the state, no longer in the feeds file
    never_polled: bool = False  # in the feeds file, not polled by any run yet

    @property
    def problem(self) -> str:
        if self.removed:
            return "removed"
        if self.never_polled:
            return "new"
        return "failing" if self.failing else "stale" if self.stale else "ok"

    @property
    def not_modified_ratio(self) -> float:
        return self.state.not_modified / self.state.polls if self.state.polls else 0.0


def _age(value: str | None, now: datetime) -> timedelta | None:
    return now - datetime.fromisoformat(value) if value else None


def feed_health(
    store: Store,
    stale_after: timedelta,
    now: datetime | None = None,
    feeds: Iterable[str] | None = None,
    states: dict[str, FeedState] | None = None,
) -> list[FeedHealth]:
    """Failing: the last poll failed. Stale: no new article for longer than `stale_after`
    (a feed that never produced one counts from its first successful poll).

    With `feeds` (the names in the current feeds file), a feed known only to the state is
    "removed" (never failing or stale: nobody polls it any more) and a listed feed with no
    state yet is "new". `states` (already read) spares reading the state again. A read
    only: damaged entries are left out, never quarantined (`read_feed_states`)."""
    now = now or datetime.now(UTC)
    if states is None:
        states = read_feed_states(store).states
    listed = {name.casefold(): name for name in feeds} if feeds is not None else None
    out = []
    for state in states.values():
        if listed is not None and state.name.casefold() not in listed:
            out.append(FeedHealth(state, failing=False, stale=False, removed=True))
            continue
        since_new = _age(state.last_new_article_at or state.last_success_at, now)
        stale = since_new is None or since_new > stale_after
        out.append(FeedHealth(state, state.consecutive_failures > 0, stale))
    if listed is not None:
        known = {s.name.casefold() for s in states.values()}
        for key, name in listed.items():
            if key not in known:
                out.append(FeedHealth(FeedState(name, ""), False, False, never_polled=True))
    return sorted(out, key=lambda r: r.state.name)


def clip_words(text: str, limit: int) -> str:
    """One line of at most `limit` characters, cut at a word boundary when cut at all."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def _short(value: str | None, now: datetime) -> str:
    age = _age(value, now)
    if age is None:
        return "never"
    hours = age.total_seconds() / 3600
    return f"{hours:.1f}h ago" if hours < 48 else f"{hours / 24:.1f}d ago"


def _until(value: str | None, now: datetime) -> str:
    """When adaptive polling next polls the feed: "now" once due."""
    if not value:
        return "now"
    try:
        left = (datetime.fromisoformat(value) - now).total_seconds()
    except ValueError:
        return "now"
    if left <= 0:
        return "now"
    return f"in {left / 60:.0f}m" if left < 5400 else f"in {left / 3600:.1f}h"


def render_table(
    rows: list[FeedHealth], now: datetime | None = None, show_all: bool = False
) -> str:
    now = now or datetime.now(UTC)
    shown = [r for r in rows if show_all or r.problem in ("failing", "stale", "removed")]
    head = f"{'feed':<24} {'problem':<8} {'last status':<13} {'fails':>5} {'last success':>13} "
    head += f"{'last new':>12} {'304 ratio':>9} {'next due':>10}  last error"
    lines = [head, "-" * len(head)]
    for r in shown:
        s = r.state
        lines.append(
            f"{s.name:<24} {r.problem:<8} {s.last_status or '-':<13} "
            f"{s.consecutive_failures:>5} {_short(s.last_success_at, now):>13} "
            f"{_short(s.last_new_article_at, now):>12} {r.not_modified_ratio:>9.0%} "
            f"{_until(s.next_due_at, now):>10}  "
            f"{clip_words(s.last_error or '', ERROR_COLUMN_CHARS)}"
        )
    counts = {p: sum(r.problem == p for r in rows) for p in ("failing", "stale", "ok")}
    tail = f"{len(rows)} feeds: {counts['failing']} failing, {counts['stale']} stale, "
    tail += f"{counts['ok']} ok"
    for extra in ("removed", "new"):
        n = sum(r.problem == extra for r in rows)
        if n:
            tail += f", {n} {extra}"
    lines.append(tail)
    for r in rows:  # dates that move without the pages: rechecked less often (polling)
        s = r.state
        resume = _until(s.recheck_after, now)
        if resume != "now":
            lines.append(
                f"{s.name}: update rechecks paused, resume {resume} "
                f"({s.recheck_misses} runs in a row found every changed date's page unchanged)"
            )
    return "\n".join(lines)


def has_problems(rows: list[FeedHealth]) -> bool:
    return any(r.problem in ("failing", "stale") for r in rows)


@dataclass
class RunHealth:
    """One run's feed verdict: the feeds that failed in it and the stale ones, against
    thresholds. `unhealthy` is what schedulers turn into a visible failure and an alert."""

    feeds_polled: int
    failed: dict[str, str] = field(default_factory=dict)  # feed name -> error
    stale: list[str] = field(default_factory=list)
    max_failed: int | None = 0  # more failed feeds than this: unhealthy (None: no limit)
    max_failed_percent: float | None = None  # at least this share failed: unhealthy
    max_stale: int | None = None  # None: staleness never makes a run unhealthy

    @property
    def failed_percent(self) -> float:
        return 100.0 * len(self.failed) / self.feeds_polled if self.feeds_polled else 0.0

    @property
    def reasons(self) -> list[str]:
        out = []
        over_count = self.max_failed is not None and len(self.failed) > self.max_failed
        over_share = (
            self.max_failed_percent is not None
            and bool(self.failed)
            and self.failed_percent >= self.max_failed_percent
        )
        if over_count or over_share:
            out.append(
                f"{len(self.failed)} of {self.feeds_polled} feeds failed "
                f"({self.failed_percent:.0f}%)"
            )
        if self.max_stale is not None and len(self.stale) > self.max_stale:
            out.append(f"{len(self.stale)} feeds stale")
        return out

    @property
    def unhealthy(self) -> bool:
        return bool(self.reasons)

    def message(self, limit: int = 10) -> str:
        """One line naming the feeds and their errors (the first `limit` of each kind)."""
        parts = ["; ".join(self.reasons) or "all feeds healthy"]
        if self.failed:
            named = sorted(self.failed.items())
            listed = ", ".join(f"{n} ({clip_words(e, 60)})" for n, e in named[:limit])
            more = f" and {len(named) - limit} more" if len(named) > limit else ""
            parts.append(f"failed: {listed}{more}")
        if self.stale and self.max_stale is not None:
            more = f" and {len(self.stale) - limit} more" if len(self.stale) > limit else ""
            parts.append(f"stale: {', '.join(sorted(self.stale)[:limit])}{more}")
        return " | ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "unhealthy": self.unhealthy,
            "feeds_polled": self.feeds_polled,
            "failed": dict(sorted(self.failed.items())),
            "stale": sorted(self.stale),
            "message": self.message(),
        }


def run_health(
    report: dict[str, Any],
    store: Store | None = None,
    *,
    feeds: Iterable[str] | None = None,
    max_failed: int | None = 0,
    max_failed_percent: float | None = None,
    stale_after: timedelta | None = None,
    max_stale: int | None = None,
    now: datetime | None = None,
) -> RunHealth:
    """The verdict on a run's report. Failed feeds come from the report itself (this run);
    stale ones from the store's feed state, limited to `feeds` (the run's feed names)."""
    failed = dict(report.get("failed_feeds") or {})
    polled = int(report.get("feeds_total") or 0) - int(report.get("feeds_disabled") or 0)
    polled -= int(report.get("feeds_not_due") or 0)
    stale: list[str] = []
    if store is not None and stale_after is not None and max_stale is not None:
        rows = feed_health(store, stale_after, now, feeds=feeds)
        stale = [r.state.name for r in rows if r.problem == "stale"]
    return RunHealth(
        feeds_polled=max(polled, len(failed)),
        failed=failed,
        stale=stale,
        max_failed=max_failed,
        max_failed_percent=max_failed_percent,
        max_stale=max_stale,
    )


def render_push(states: dict[str, FeedState], subscriptions: list[Status], inbox: int) -> str:
    """WebSub at a glance: each source that announces a hub or is subscribed, with the
    subscription's state and lease, and the inbox's depth. Empty when nothing uses push."""
    by_source = {s.subscription.source: s for s in subscriptions}
    names = sorted({n for n, s in states.items() if s.websub_hub} | set(by_source))
    if not names and not inbox:
        return ""
    lines = [f"{'push (WebSub)':<24} {'state':<13} {'lease ends':<25} hub"]
    for name in names:
        status, state = by_source.get(name), states.get(name)
        ends, error = "-", ""
        if status is None:
            hub, shown = (state.websub_hub if state else None) or "", "not subscribed"
        else:
            sub, ver = status.subscription, status.verification
            expires = ver.expires_at if ver is not None else None
            hub, shown = sub.hub, status.state
            if expires is not None:
                ends = expires.isoformat()
            if sub.last_error:
                error = f"  ({clip_words(sub.last_error, ERROR_COLUMN_CHARS)})"
        lines.append(f"{name:<24} {shown:<13} {ends[:25]:<25} {hub}{error}")
    lines.append(f"inbox: {inbox} notification(s) waiting")
    return "\n".join(lines)
