"""Poll one feed (conditional GET) and turn its entries into plain `FeedEntry` values."""

from __future__ import annotations

import calendar
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser
from w3lib.html import remove_tags, replace_entities

from ingest.config import Feed
from ingest.http_client import FetchError, HttpClient
from ingest.state import FeedState

log = logging.getLogger(__name__)

FEED_TYPES = ("text/*", "*xml", "*+xml", "application/octet-stream")


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


@dataclass
class PollResult:
    feed: Feed
    status: str  # ok | not_modified | failed
    entries: list[FeedEntry] = field(default_factory=list)
    etag: str | None = None
    last_modified: str | None = None
    error: FetchError | None = None
    malformed: str | None = None  # feedparser's complaint when it still recovered entries
    bytes: int = 0


def _when(struct: Any) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def plain_text(value: str | None) -> str | None:
    if not value:
        return None
    text = " ".join(replace_entities(remove_tags(value)).split())
    return text or None


def parse_feed(body: bytes, feed: Feed, final_url: str, content_type: str) -> PollResult:
    parsed = feedparser.parse(
        body,
        response_headers={"content-location": final_url, "content-type": content_type},
        sanitize_html=False,
        resolve_relative_uris=True,
    )
    malformed = None
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        malformed = f"{type(exc).__name__}: {exc}"
        if not parsed.entries:
            return PollResult(
                feed,
                "failed",
                error=FetchError("feed_parse_error", f"{feed.url}: {malformed}"),
            )
    if not parsed.entries and not parsed.get("version"):
        return PollResult(
            feed, "failed", error=FetchError("feed_parse_error", f"{feed.url}: not a feed")
        )
    language = feed.language or parsed.feed.get("language") or None
    entries = []
    for raw in parsed.entries:
        link = raw.get("link") or None
        if not link:
            for alt in raw.get("links", ()):
                if alt.get("rel", "alternate") == "alternate" and alt.get("href"):
                    link = alt["href"]
                    break
        authors = [a.get("name") for a in raw.get("authors", ()) if a.get("name")]
        if not authors and raw.get("author"):
            authors = [raw["author"]]
        entries.append(
            FeedEntry(
                feed=feed.name,
                feed_url=feed.url,
                link=link.strip() if link else None,
                title=plain_text(raw.get("title")),
                summary=plain_text(raw.get("summary")),
                # dict.get skips feedparser's deprecated updated->published key aliasing;
                # RSS 1.0's dc:date arrives as "updated", so it backs "published" up.
                published=_when(
                    dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")
                ),
                updated=_when(dict.get(raw, "updated_parsed")),
                authors=authors,
                categories=[t.get("term") for t in raw.get("tags", ()) if t.get("term")],
                language=raw.get("language") or language,
            )
        )
    return PollResult(feed, "ok", entries=entries, malformed=malformed)


Parser = Callable[[bytes, Feed, str, str], PollResult]


def poll(
    client: HttpClient, feed: Feed, state: FeedState, parse: Parser = parse_feed
) -> PollResult:
    """GET the feed with its validators; a 304 costs no parsing and no article fetches.

    `parse` lets the caller run feedparser (CPU-bound) in its worker processes.
    """
    try:
        resp = client.get(feed.url, accept=FEED_TYPES, headers=state.conditional_headers())
    except FetchError as exc:
        return PollResult(feed, "failed", error=exc)
    if resp.status == 304:
        return PollResult(feed, "not_modified", etag=state.etag, last_modified=state.last_modified)
    try:
        result = parse(resp.body, feed, resp.final_url, resp.headers.get("content-type", ""))
    except Exception as exc:  # a parser crash on hostile input is this feed's failure only
        detail = f"{feed.url}: {type(exc).__name__}: {exc}"
        return PollResult(feed, "failed", error=FetchError("feed_parse_error", detail))
    result.etag = resp.headers.get("etag")
    result.last_modified = resp.headers.get("last-modified")
    result.bytes = len(resp.body)
    if result.malformed:
        log.warning("feed %s is malformed but readable: %s", feed.name, result.malformed)
    return result
