"""What every kind of source yields: entries and one poll's result.

A source module (rss, jsonfeed, sitemap, …) turns a document into a `PollResult` of
`FeedEntry` values; everything after polling sees only these, whatever the source was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from ingest.config import Feed
from ingest.net import FetchError, request_url

Status = Literal["ok", "not_modified", "failed"]
# rss: RSS/Atom/RDF (feedparser); json: JSON Feed; sitemap: a urlset; sitemapindex: an
# index (its children are followed by ingest.sources.poll)
Format = Literal["rss", "json", "sitemap", "sitemapindex"]

# Entries kept per poll of a source whose feeds-file entry sets no `max_entries`, for the
# formats that can be huge (JSON Feed, sitemaps: 50,000 URLs per file, an index of many).
MAX_SOURCE_ENTRIES = 50_000
# Dates further ahead than this are not dates (as in ingest.normalize): ignored when
# ordering entries and when deciding whether an entry changed.
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass
class FeedEntry:
    feed: str
    feed_url: str
    link: str | None
    title: str | None = None
    summary: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    language: str | None = None
    site_name: str | None = None  # the publication's name, when the source says it
    arrival: str = "poll"  # how the entry reached us: poll, or push (a WebSub notification)
    first_seen_at: datetime | None = None  # when the poll or the notification brought it

    def __post_init__(self) -> None:
        # every kind of source alike: the link is kept as it will be requested
        if self.link and self.link.lower().startswith(("http://", "https://")):
            self.link = request_url(self.link)


@dataclass
class SitemapRef:
    """A child sitemap named by a sitemap index; poll() decides which ones to fetch."""

    url: str
    lastmod: datetime | None = None


@dataclass
class PollResult:
    feed: Feed
    status: Status
    entries: list[FeedEntry] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    error: FetchError | None = None
    malformed: str | None = None  # feedparser's complaint when it still recovered entries
    bytes: int = 0
    # seconds the publisher says the source stays unchanged (ttl, sy:update*, max-age,
    # Expires): a floor for the next poll (ingest.polling)
    hint_seconds: float | None = None
    # rss: RSS/Atom/RDF (feedparser); json: JSON Feed; sitemap: a urlset; sitemapindex:
    # an index (its children followed by poll())
    kind: Format = "rss"
    sitemaps: list[SitemapRef] = field(default_factory=list)  # an index's children
    entries_dropped: int = 0  # beyond max_entries (or MAX_SOURCE_ENTRIES); the oldest go
    # an index's children by outcome: fetched, failed, nested_index, over_limit, too_old…
    sitemap_counts: dict[str, int] = field(default_factory=dict)
    # WebSub (ingest.websub.discovery): the source's hubs and topic URL, from its Link
    # headers, else from the document
    hubs: list[str] = field(default_factory=list)
    topic: str | None = None


# A source module's parser: (body, feed, final URL, content type) -> PollResult. Top-level
# functions only: the run calls them in its worker processes.
Parser = Callable[[bytes, Feed, str, str], PollResult]
