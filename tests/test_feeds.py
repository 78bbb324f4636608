"""Feed parsing: RSS 2.0, RSS 1.0, Atom, relative links, broken XML."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest.config import Feed
from ingest.feeds import parse_feed

FEED = Feed("t", "https://news.example/feeds/main.xml")

RSS2 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://news.example/</link>
<language>en-gb</language>
<item><title>First &amp; foremost</title><link>https://news.example/a/1</link>
<pubDate>Thu, 18 Dec 2025 10:15:00 +0200</pubDate><author>jane@news.example (Jane Doe)</author>
<category>World</category>
<description>&lt;p&gt;Lead &lt;b&gt;text&lt;/b&gt;&lt;/p&gt;</description></item>
<item><title>No link here</title><description>x</description></item>
</channel></rss>"""

RSS1 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://news.example/"><title>T</title><link>https://news.example/</link>
<description>d</description></channel>
<item rdf:about="https://news.example/a/2"><title>Second</title><link>https://news.example/a/2</link>
<dc:date>2025-12-18T08:00:00Z</dc:date><dc:creator>John Roe</dc:creator></item>
</rdf:RDF>"""

ATOM_RELATIVE = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://news.example/science/">
<title>S</title><id>urn:s</id><updated>2025-12-18T09:00:00Z</updated>
<entry><title>Third</title><id>urn:3</id><link rel="alternate" href="stories/3?utm_source=atom"/>
<published>2025-12-18T09:00:00Z</published><updated>2025-12-18T09:30:00Z</updated>
<summary>Short</summary></entry>
<entry><title>Fourth</title><id>urn:4</id><link href="/economy/4"/>
<updated>2025-12-17T09:00:00Z</updated></entry>
</feed>"""


def test_rss2_fields_and_missing_link() -> None:
    result = parse_feed(RSS2, FEED, FEED.url, "application/rss+xml")
    assert result.status == "ok" and result.malformed is None
    first, second = result.entries
    assert first.link == "https://news.example/a/1"
    assert first.title == "First & foremost"
    assert first.summary == "Lead text"
    assert first.published == datetime(2025, 12, 18, 8, 15, tzinfo=UTC)
    assert first.categories == ["World"] and first.language == "en-gb"
    assert first.authors and "Jane Doe" in first.authors[0]
    assert second.link is None


def test_rss1_rdf() -> None:
    (entry,) = parse_feed(RSS1, FEED, FEED.url, "application/rdf+xml").entries
    assert entry.link == "https://news.example/a/2"
    assert entry.published == datetime(2025, 12, 18, 8, 0, tzinfo=UTC)
    assert entry.authors == ["John Roe"]


def test_atom_relative_links_resolved() -> None:
    result = parse_feed(ATOM_RELATIVE, FEED, FEED.url, "application/atom+xml")
    links = [e.link for e in result.entries]
    assert links == [
        "https://news.example/science/stories/3?utm_source=atom",
        "https://news.example/economy/4",
    ]
    assert result.entries[0].updated == datetime(2025, 12, 18, 9, 30, tzinfo=UTC)


def test_relative_links_without_xml_base_use_the_feed_url() -> None:
    body = RSS2.replace(b"https://news.example/a/1", b"/a/1")
    (entry, _) = parse_feed(body, FEED, "https://mirror.example/feeds/x.xml", "text/xml").entries
    assert entry.link == "https://mirror.example/a/1"


def test_broken_xml_is_a_feed_failure_not_an_exception() -> None:
    result = parse_feed(b"<rss><channel><item><title>oops", FEED, FEED.url, "text/xml")
    assert result.status in ("failed", "ok")
    if result.status == "ok":  # feedparser recovered something: it must say so
        assert result.malformed
    result = parse_feed(b"\x00\x01 not xml at all {", FEED, FEED.url, "text/xml")
    assert result.status == "failed" and result.error.reason == "feed_parse_error"


def test_html_page_instead_of_feed_fails() -> None:
    result = parse_feed(b"<html><body><p>Welcome</p></body></html>", FEED, FEED.url, "text/html")
    assert result.status == "failed"
