"""The run's stages as pure logic, no server and no store: which entries a poll leads to
fetch, and where an extracted page goes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ingest import ids
from ingest.config import Feed
from ingest.lake.keys import Marker
from ingest.run.ledger import Ledger, SourceRun
from ingest.run.page import route
from ingest.run.select import select
from ingest.sources import FeedEntry
from ingest.state import FeedState

STARTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Committed:
    """Committed link keys and their markers, in memory (ingest.lake.KeyIndex's role)."""

    def __init__(self, markers: dict[str, Marker]) -> None:
        self.markers = markers

    def committed(self, keys: Iterable[str]) -> set[str]:
        return {k for k in keys if k in self.markers}

    def read(self, key: str) -> Marker | None:
        return self.markers.get(key)


def source(name: str = "wire", checked: datetime | None = None, **feed: object) -> SourceRun:
    state = FeedState(name, f"https://{name}.example/f.xml")
    stamp = checked.isoformat() if checked else None
    return SourceRun(Feed(name, state.url, **feed), state, checked_since=stamp)  # type: ignore[arg-type]


def entry(link: str | None, feed: str = "wire", **dates: datetime) -> FeedEntry:
    return FeedEntry(feed, f"https://{feed}.example/f.xml", link, **dates)  # type: ignore[arg-type]


def pick(src: SourceRun, entries: list[FeedEntry], committed: Committed, ledger: Ledger,
         max_rechecks: int = 100) -> list[str]:  # fmt: skip
    ledger.sources.setdefault(src.feed.name, src)
    todo = select(src, entries, committed, ledger, started=STARTED, max_rechecks=max_rechecks)
    return [e.link or "" for e, _ in todo]


def test_new_links_are_fetched_and_everything_else_is_a_counted_skip() -> None:
    ledger = Ledger()
    old = STARTED - timedelta(days=5)
    entries = [
        entry("https://p.example/new"),
        entry(None),
        entry("mailto:desk@p.example"),
        entry("https://p.example/seen"),
        entry("https://p.example/stale", published=old),
        entry("https://p.example/also-new"),
    ]
    committed = Committed({ids.url_key("https://p.example/seen"): Marker("a1")})
    links = pick(source(max_age_days=2), entries, committed, ledger)
    assert links == ["https://p.example/new", "https://p.example/also-new"]
    assert ledger.skips == {"no_link": 2, "already_seen": 1, "filtered": 1}
    # a second source listing the same link in this run: fetched once
    again = pick(source("other"), [entry("https://p.example/new", "other")], committed, ledger)
    assert again == [] and ledger.skips["duplicate_in_run"] == 1


def test_max_entries_keeps_the_first_entries() -> None:
    ledger = Ledger()
    entries = [entry(f"https://p.example/{i}") for i in range(5)]
    assert pick(source(max_entries=2), entries, Committed({}), ledger) == [
        "https://p.example/0",
        "https://p.example/1",
    ]
    assert ledger.skips["filtered"] == 3


def test_a_link_that_failed_transiently_keeps_every_source_that_listed_it_owed() -> None:
    ledger = Ledger()
    first, second = source("one"), source("two")
    pick(first, [entry("https://p.example/x", "one")], Committed({}), ledger)
    with ledger.lock:
        ledger.transient_failure(ids.url_key("https://p.example/x"), "one")
    pick(second, [entry("https://p.example/x", "two")], Committed({}), ledger)  # listed late
    assert (first.transient_failures, second.transient_failures) == (1, 1)


def test_rechecks_skip_far_future_dates_and_are_capped_oldest_first() -> None:
    ledger = Ledger()
    checked = STARTED - timedelta(hours=1)
    links = [f"https://p.example/{i}" for i in range(4)]
    markers = {ids.url_key(u): Marker(f"a{i}", "2026-11-30", "sha") for i, u in enumerate(links)}
    entries = [
        entry(links[0], updated=STARTED - timedelta(minutes=10)),
        entry(links[1], updated=STARTED - timedelta(minutes=30)),
        entry(links[2], updated=datetime(9999, 12, 31, tzinfo=UTC)),  # not a date
        entry(links[3], updated=STARTED - timedelta(minutes=20)),
    ]
    src = source(checked=checked)
    assert pick(src, entries, Committed(markers), ledger, max_rechecks=2) == [links[1], links[3]]
    assert ledger.skips == {"recheck_deferred": 1, "already_seen": 1}
    assert src.rechecks_deferred and src.backlog_cursor is not None
    assert src.backlog_cursor.endswith(ids.url_key(links[3]))
    # the next run continues after the cursor
    later = source(checked=checked)
    later.state.recheck_cursor = src.backlog_cursor
    assert pick(later, entries, Committed(markers), Ledger(), max_rechecks=2) == [links[0]]
    assert not later.rechecks_deferred


def row(aid: str, sha: str = "s1") -> dict:
    return {"article_id": aid, "content_sha256": sha, "published_at": STARTED,
            "language": "en", "ingest_date": STARTED.date()}  # fmt: skip


def test_route_new_duplicate_and_known_articles() -> None:
    ledger, src = Ledger(), source()
    assert route(row("a1"), None, False, ledger, src) == "article"
    assert route(row("a1"), None, False, ledger, src) is None  # the same article again
    assert route(row("a2"), None, True, ledger, src) is None  # committed under another link
    assert ledger.skips == {"duplicate_in_run": 1, "already_seen": 1}
    assert src.new_articles == 1 and ledger.article_ids == {"a1"}


def test_route_rechecked_articles_by_their_body() -> None:
    ledger, src = Ledger(), source()
    marker = Marker("a1", "2026-11-30", "old")
    assert route(row("a1", "old"), marker, False, ledger, src) is None  # unchanged
    assert route(row("a1", "new"), marker, False, ledger, src) == "update"
    assert ledger.update_targets == {"a1": "2026-11-30"}
    assert (src.rechecks_unchanged, src.rechecks_changed) == (1, 1)
    assert ledger.skips == {"unchanged": 1}
