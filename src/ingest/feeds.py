"""Poll one source (conditional GET) and turn its entries into plain `FeedEntry` values.

A source is a feed (RSS, Atom, RDF: feedparser; JSON Feed: ingest.jsonfeed) or a sitemap
(urlset, Google News, index, gzip: ingest.sitemaps). The format is told by the content,
or forced by the feeds file's `kind`; every format yields the same `PollResult`.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import feedparser

from ingest.config import Feed
from ingest.http_client import FetchError, HttpClient, request_url
from ingest.polling import body_hint, header_hint
from ingest.state import FeedState

log = logging.getLogger(__name__)

# Content types a source may answer with: feeds and sitemaps as XML, JSON Feed as JSON,
# compressed sitemaps (`.xml.gz`) as gzip or a generic binary type. The content decides
# the format; a type outside this list (an HTML page, an image) is refused unread.
FEED_TYPES = (
    "text/*",
    "*xml",
    "*+xml",
    "*json",
    "*gzip",
    "application/octet-stream",
    "binary/octet-stream",
)
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, "
    "application/gzip;q=0.5, */*;q=0.1"
)

# Entries kept per poll of a source whose feeds-file entry sets no `max_entries`, for the
# formats that can be huge (JSON Feed, sitemaps: 50,000 URLs per file, an index of many).
MAX_SOURCE_ENTRIES = 50_000
# Dates further ahead than this are not dates (as in ingest.normalize) when ordering.
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
    status: str  # ok | not_modified | failed
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
    kind: str = "rss"
    sitemaps: list[SitemapRef] = field(default_factory=list)  # an index's children
    entries_dropped: int = 0  # beyond max_entries (or MAX_SOURCE_ENTRIES); the oldest go
    # an index's children by outcome: fetched, failed, nested_index, over_limit, too_old…
    sitemap_counts: dict[str, int] = field(default_factory=dict)


def _when(struct: Any) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def plain_text(value: str | None) -> str | None:
    """Text of an HTML fragment (a summary, a JSON Feed `content_html`): script, style and
    other non-text elements dropped with their content, a space where a block or line
    break ends, entities decoded, whitespace collapsed. Malformed markup is read the way a
    browser would recover it (html.parser), in one linear pass."""
    if not value:
        return None
    reader = _TextOf()
    try:
        reader.feed(value)
        reader.close()
    except (AssertionError, ValueError):  # html.parser's rare complaints on broken markup
        pass
    text = " ".join("".join(reader.parts).split())
    return text or None


_SKIPPED = frozenset({"script", "style", "noscript", "template", "iframe", "object", "svg"})
_BREAKS = frozenset(
    "address article aside blockquote br dd details div dl dt figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table td th tr ul".split()
)


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping: list[str] = []  # open non-text elements

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self._skipping:  # close it and anything left open inside it
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


# W3C Datetime (sitemaps), of which RFC 3339 (JSON Feed) is a profile: YYYY, YYYY-MM,
# YYYY-MM-DD, then optionally a time with or without seconds, fraction and offset.
_W3C_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?)?)?)?"
)


def parse_datetime(value: object) -> datetime | None:
    """A W3C Datetime / RFC 3339 string as an aware UTC datetime; anything else is None.

    A time without an offset is taken as UTC, a date alone as its midnight UTC."""
    if not isinstance(value, str):
        return None
    match = _W3C_DATETIME.fullmatch(value.strip()[:64])
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = UTC
        if offset and offset not in "Zz":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
            tz = timezone(sign * timedelta(minutes=minutes))
        when = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
        return when.astimezone(UTC)
    except (ValueError, OverflowError):  # month 13, hour 25, offset beyond a day, year 0
        return None


def recency(entry: FeedEntry, now: datetime | None = None) -> datetime | None:
    """The entry's newest date (published or updated), ignoring dates in the future."""
    limit = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
    dates = [d for d in (entry.published, entry.updated) if d is not None and d <= limit]
    return max(dates, default=None)


def entry_cap(feed: Feed) -> int:
    return feed.max_entries or MAX_SOURCE_ENTRIES


def newest_first(entries: list[FeedEntry], cap: int) -> tuple[list[FeedEntry], int]:
    """Entries newest first (undated ones after the dated, in document order), cut to
    `cap`; returns them and how many were cut. Order matters because `max_entries` keeps
    the first entries: for formats that are not in date order (sitemaps), that must mean
    the newest."""
    now = datetime.now(UTC)
    oldest = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(entries, key=lambda e: recency(e, now) or oldest, reverse=True)  # stable
    return ordered[:cap], max(0, len(ordered) - cap)


def parse_feed(body: bytes, feed: Feed, final_url: str, content_type: str) -> PollResult:
    """Parse a source's body in whatever format it is (see the module docstring).

    Top-level and picklable: the pipeline runs it in its worker processes."""
    other = _parse_other_format(body, feed, final_url, content_type)
    if other is not None:
        return other
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


def _parse_other_format(
    body: bytes, feed: Feed, final_url: str, content_type: str
) -> PollResult | None:
    """JSON Feed or sitemap by content (or `kind: sitemap`); None leaves it to feedparser."""
    # Imported here: both modules build on this one's FeedEntry and PollResult.
    from ingest import jsonfeed, sitemaps

    if feed.kind == "sitemap":
        return sitemaps.parse_sitemap(body, feed, final_url, content_type)
    if jsonfeed.looks_like_json(body):
        return jsonfeed.parse_json_feed(body, feed, final_url, content_type)
    if feed.kind == "auto" and sitemaps.sitemap_root(body) is not None:
        return sitemaps.parse_sitemap(body, feed, final_url, content_type)
    return None


Parser = Callable[[bytes, Feed, str, str], PollResult]


def request_headers(extra: dict[str, str]) -> dict[str, str]:
    """Headers for a source's GET: what formats we read, plus the conditional ones."""
    return {"Accept": ACCEPT, **extra}


def parse_response(
    client: HttpClient, feed: Feed, body: bytes, url: str, ctype: str, parse: Parser
) -> PollResult:
    """Gunzip a compressed body within the byte limit, then parse it; never raises."""
    from ingest.sitemaps import gunzip_limited, is_gzip

    try:
        if is_gzip(body):  # a `.xml.gz` file, whatever its content type
            body = gunzip_limited(body, client.settings.max_bytes, url)
        result = parse(body, feed, url, ctype)
    except FetchError as exc:
        return PollResult(feed, "failed", error=exc)
    except Exception as exc:  # a parser crash on hostile input is this feed's failure only
        detail = f"{feed.url}: {type(exc).__name__}: {exc}"
        return PollResult(feed, "failed", error=FetchError("feed_parse_error", detail))
    return result


def poll(
    client: HttpClient,
    feed: Feed,
    state: FeedState,
    parse: Parser = parse_feed,
    max_sitemaps: int | None = None,
) -> PollResult:
    """GET the source with its validators; a 304 costs no parsing and no article fetches.

    `parse` lets the caller run the parsers (CPU-bound) in its worker processes. A sitemap
    index is followed here, through the same client: at most `max_sitemaps` children
    (default ingest.sitemaps.MAX_CHILD_SITEMAPS), newest first, one level deep.
    """
    headers = request_headers(state.conditional_headers())
    try:
        resp = client.get(feed.url, accept=FEED_TYPES, headers=headers)
    except FetchError as exc:
        return PollResult(feed, "failed", error=exc)
    if resp.status == 304:
        return PollResult(
            feed,
            "not_modified",
            etag=state.etag,
            last_modified=state.last_modified,
            hint_seconds=header_hint(resp.headers),
        )
    ctype = resp.headers.get("content-type", "")
    result = parse_response(client, feed, resp.body, resp.final_url, ctype, parse)
    result.etag = resp.headers.get("etag")
    result.last_modified = resp.headers.get("last-modified")
    result.bytes = len(resp.body)
    hints = [h for h in (body_hint(resp.body), header_hint(resp.headers)) if h is not None]
    result.hint_seconds = max(hints) if hints else None
    if result.status == "ok" and result.kind == "sitemapindex":
        result = _follow_index(client, feed, result, parse, max_sitemaps)
    if result.malformed:
        log.warning("feed %s is malformed but readable: %s", feed.name, result.malformed)
    return result


def _follow_index(
    client: HttpClient, feed: Feed, index: PollResult, parse: Parser, limit: int | None
) -> PollResult:
    """Fetch an index's children (no validators: the index's own say whether they changed)
    and merge their entries into the index's result."""
    from ingest.sitemaps import MAX_CHILD_SITEMAPS, follow_index

    child_feed = replace(feed, kind="sitemap")  # an index names sitemaps, nothing else

    def fetch(url: str) -> PollResult:
        try:
            resp = client.get(url, accept=FEED_TYPES, headers=request_headers({}))
        except FetchError as exc:
            return PollResult(child_feed, "failed", error=exc)
        ctype = resp.headers.get("content-type", "")
        result = parse_response(client, child_feed, resp.body, resp.final_url, ctype, parse)
        result.bytes = len(resp.body)
        return result

    return follow_index(feed, index, fetch, MAX_CHILD_SITEMAPS if limit is None else limit)
