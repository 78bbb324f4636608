"""Which source module reads a document: an ordered registry, sniff then parse.

The format is told by the content, whatever the `Content-Type`, or forced by the feeds
file's `kind`. A new kind of source is one module in this package plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ingest.config import Feed
from ingest.net import FetchError
from ingest.sources import jsonfeed, rss, sitemap
from ingest.sources.model import Parser, PollResult


@dataclass(frozen=True)
class SourceFormat:
    name: str
    sniff: Callable[[bytes], bool]  # does this body look like this format?
    parse: Parser
    kinds: tuple[str, ...]  # the feeds-file `kind`s under which it is tried
    forced_by: str | None = None  # the `kind` that means "this format, whatever it looks like"


FORMATS: tuple[SourceFormat, ...] = (
    SourceFormat("json", jsonfeed.looks_like_json, jsonfeed.parse_json_feed, ("auto", "feed")),
    SourceFormat(
        "sitemap", sitemap.is_sitemap, sitemap.parse_sitemap, ("auto",), forced_by="sitemap"
    ),
    SourceFormat("rss", lambda body: True, rss.parse_rss, ("auto", "feed")),  # the fallback
)


def parse_source(body: bytes, feed: Feed, final_url: str, content_type: str) -> PollResult:
    """Parse a source's body with the first format that claims it.

    Top-level and picklable: the run calls it in its worker processes."""
    for fmt in FORMATS:
        if fmt.forced_by is not None and fmt.forced_by == feed.kind:
            return fmt.parse(body, feed, final_url, content_type)
    for fmt in FORMATS:
        if feed.kind in fmt.kinds and fmt.sniff(body):
            return fmt.parse(body, feed, final_url, content_type)
    error = FetchError("feed_parse_error", f"{feed.url}: no source format reads it")
    return PollResult(feed, "failed", error=error)
