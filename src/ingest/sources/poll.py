"""Poll one source: a conditional GET, the body parsed by whichever source module reads it
(ingest.sources.detect), a sitemap index's children fetched through the same client.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ingest.config import Feed
from ingest.net import FetchError, HttpClient
from ingest.polling import body_hint, header_hint
from ingest.sources.compression import gunzip_limited, is_gzip
from ingest.sources.detect import parse_source
from ingest.sources.model import Parser, PollResult
from ingest.sources.sitemap import MAX_CHILD_SITEMAPS, follow_index
from ingest.state import FeedState
from ingest.websub.discovery import Discovered, from_link_header

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


def request_headers(extra: dict[str, str]) -> dict[str, str]:
    """Headers for a source's GET: what formats we read, plus the conditional ones."""
    return {"Accept": ACCEPT, **extra}


def parse_response(
    client: HttpClient, feed: Feed, body: bytes, url: str, ctype: str, parse: Parser
) -> PollResult:
    """Gunzip a compressed body within the byte limit, then parse it; never raises."""
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
    parse: Parser = parse_source,
    max_sitemaps: int | None = None,
) -> PollResult:
    """GET the source with its validators; a 304 costs no parsing and no article fetches.

    `parse` lets the caller run the parsers (CPU-bound) in its worker processes. A sitemap
    index is followed here, through the same client: at most `max_sitemaps` children
    (default ingest.sources.sitemap.MAX_CHILD_SITEMAPS), newest first, one level deep.
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
    if result.status == "ok":  # WebSub: the Link headers take precedence over the document
        header = from_link_header(resp.headers.get("link"), resp.final_url)
        push = header.merged_over(Discovered(result.hubs, result.topic))
        result.hubs, result.topic = push.hubs, push.topic
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
