"""RSS 0.9x/2.0, RSS 1.0 (RDF) and Atom, read by feedparser: the format any other source
module does not claim (ingest.sources.detect)."""

from __future__ import annotations

import feedparser

from ingest.config import Feed
from ingest.net import FetchError
from ingest.sources.dates import from_struct
from ingest.sources.markup import plain_text
from ingest.sources.model import FeedEntry, PollResult
from ingest.websub.discovery import from_links


def parse_rss(body: bytes, feed: Feed, final_url: str, content_type: str) -> PollResult:
    """Whatever feedparser reads; a document it cannot read is a failed source."""
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
                published=from_struct(
                    dict.get(raw, "published_parsed") or dict.get(raw, "updated_parsed")
                ),
                updated=from_struct(dict.get(raw, "updated_parsed")),
                authors=authors,
                categories=[t.get("term") for t in raw.get("tags", ()) if t.get("term")],
                language=raw.get("language") or language,
            )
        )
    links = [(link.get("rel"), link.get("href")) for link in parsed.feed.get("links", ())]
    push = from_links(links, final_url)
    return PollResult(
        feed, "ok", entries=entries, malformed=malformed, hubs=push.hubs, topic=push.topic
    )
