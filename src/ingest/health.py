"""Feed health from the state in the store: which feeds fail, which went stale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest.state import FeedState, load_feed_states
from ingest.store import Store


@dataclass(frozen=True)
class FeedHealth:
    state: FeedState
    failing: bool
    stale: bool

    @property
    def not_modified_ratio(self) -> float:
        return self.state.not_modified / self.state.polls if self.state.polls else 0.0


def _age(value: str | None, now: datetime) -> timedelta | None:
    return now - datetime.fromisoformat(value) if value else None


def feed_health(
    store: Store, stale_after: timedelta, now: datetime | None = None
) -> list[FeedHealth]:
    """Failing: the last poll failed. Stale: no new article for longer than `stale_after`
    (a feed that never produced one counts from its first successful poll)."""
    now = now or datetime.now(UTC)
    out = []
    for state in sorted(load_feed_states(store).values(), key=lambda s: s.name):
        since_new = _age(state.last_new_article_at or state.last_success_at, now)
        stale = since_new is None or since_new > stale_after
        out.append(FeedHealth(state, state.consecutive_failures > 0, stale))
    return out


def _short(value: str | None, now: datetime) -> str:
    age = _age(value, now)
    if age is None:
        return "never"
    hours = age.total_seconds() / 3600
    return f"{hours:.1f}h ago" if hours < 48 else f"{hours / 24:.1f}d ago"


def render_table(
    rows: list[FeedHealth], now: datetime | None = None, show_all: bool = False
) -> str:
    now = now or datetime.now(UTC)
    shown = [r for r in rows if show_all or r.failing or r.stale]
    head = f"{'feed':<24} {'problem':<8} {'last status':<13} {'fails':>5} {'last success':>13} "
    head += f"{'last new':>12} {'304 ratio':>9}  last error"
    lines = [head, "-" * len(head)]
    for r in shown:
        s = r.state
        problem = "failing" if r.failing else "stale" if r.stale else "ok"
        lines.append(
            f"{s.name:<24} {problem:<8} {s.last_status or '-':<13} {s.consecutive_failures:>5} "
            f"{_short(s.last_success_at, now):>13} {_short(s.last_new_article_at, now):>12} "
            f"{r.not_modified_ratio:>9.0%}  {(s.last_error or '')[:80]}"
        )
    failing = sum(r.failing for r in rows)
    stale = sum(r.stale and not r.failing for r in rows)
    lines.append(
        f"{len(rows)} feeds: {failing} failing, {stale} stale, {len(rows) - failing - stale} ok"
    )
    return "\n".join(lines)
