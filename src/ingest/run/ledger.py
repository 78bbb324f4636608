"""A run's shared bookkeeping: what each source's poll led to and what every page became.

Fetch threads update it concurrently, always under `lock`; the source outcomes it keeps
are what `ingest.polling.next_state` turns into each source's next state.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from ingest import polling
from ingest.config import Feed
from ingest.lake.keys import Marker
from ingest.sources import PollResult
from ingest.state import FeedState


@dataclass
class SourceRun:
    """One source in this run: its state before, its poll, and what its entries became."""

    feed: Feed
    state: FeedState
    poll: PollResult | None = None
    transient_failures: int = 0
    new_articles: int = 0
    checked_since: str | None = None  # entries updated after this are checked again
    rechecks_changed: int = 0
    rechecks_unchanged: int = 0
    rechecks_deferred: bool = False
    backlog_cursor: str | None = None  # where this run's capped rechecks stopped

    def outcome(self) -> polling.PollOutcome:
        result = self.poll
        assert result is not None
        error = result.error
        return polling.PollOutcome(
            status=result.status,
            etag=result.etag,
            last_modified=result.last_modified,
            error=str(error) if error is not None else None,
            retry_after=error.retry_after if error is not None else None,
            hint_seconds=result.hint_seconds,
            entry_dates=tuple(e.published for e in result.entries if e.published),
            new_articles=self.new_articles,
            transient_failures=self.transient_failures,
            rechecks_changed=self.rechecks_changed,
            rechecks_unchanged=self.rechecks_unchanged,
            rechecks_deferred=self.rechecks_deferred,
            backlog_cursor=self.backlog_cursor,
            hubs=tuple(result.hubs),
            topic=result.topic,
        )


@dataclass
class Ledger:
    sources: dict[str, SourceRun] = field(default_factory=dict)  # by feed name
    lock: threading.Lock = field(default_factory=threading.Lock)
    article_ids: set[str] = field(default_factory=set)
    published_at: dict[str, float] = field(default_factory=dict)  # article id -> unix time
    link_feeds: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # key -> feeds
    link_articles: dict[str, str] = field(default_factory=dict)  # link key -> article id
    rechecks: dict[str, Marker] = field(default_factory=dict)  # link key -> committed marker
    update_targets: dict[str, str] = field(default_factory=dict)  # article id -> its partition
    scheduled: set[str] = field(default_factory=set)  # link keys fetched in this run
    failed_transiently: set[str] = field(default_factory=set)  # link keys to try again
    index_dates: set[str] = field(default_factory=set)
    skips: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    pages_fetched: int = 0
    articles_extracted: int = 0
    pushed: set[str] = field(default_factory=set)  # article ids that arrived by push

    def transient_failure(self, key: str, feed_name: str) -> None:
        """A link that may succeed later: every source that listed it must see it again
        (its validators stay, it stays due). Call with `lock` held."""
        self.failed_transiently.add(key)
        for name, _url in self.link_feeds.get(key, {(feed_name, "")}):
            if name in self.sources:
                self.sources[name].transient_failures += 1

    def sources_of_articles(self) -> dict[str, list[list[str]]]:
        """Every feed that linked each article of this run, through any of its links."""
        out: dict[str, set[tuple[str, str]]] = {}
        for key, aid in self.link_articles.items():
            out.setdefault(aid, set()).update(self.link_feeds.get(key, ()))
        return {aid: sorted([name, url] for name, url in feeds) for aid, feeds in out.items()}
