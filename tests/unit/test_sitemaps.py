"""Sitemaps parsed without a server: lastmod order and caps, detection by root element,
unescaped ampersands, entity expansion, and links kept as requested."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime

from ingest.config import Feed
from ingest.sources.detect import parse_source
from ingest.sources.sitemap import sitemap_root
from tests.helpers.sitemaps import SM, XML, index, urlset


def test_urlset_lastmod_orders_and_caps_undated_entries_are_kept() -> None:
    body = urlset(
        ("https://news.example/old", "2025-11-01"),
        "https://news.example/undated-1",
        ("https://news.example/new", "2025-12-18T09:00:00+00:00"),
        ("https://news.example/mid", "2025-12-01T00:00Z"),
        "https://news.example/undated-2",
        ("https://news.example/bad-date", "last tuesday"),
    )
    feed = Feed("s", "https://news.example/sitemap.xml")
    result = parse_source(body, feed, feed.url, XML)
    assert [e.link.rsplit("/", 1)[1] for e in result.entries] == [
        "new", "mid", "old", "undated-1", "undated-2", "bad-date"]  # fmt: skip
    new = result.entries[0]
    assert new.published == new.updated == datetime(2025, 12, 18, 9, tzinfo=UTC)
    capped = parse_source(body, Feed("s", feed.url, max_entries=2), feed.url, XML)
    assert [e.link for e in capped.entries] == [
        "https://news.example/new",
        "https://news.example/mid",
    ]
    assert capped.entries_dropped == 4
    # a plain urlset without any dates: all are candidates, still capped
    plain = urlset(*(f"https://news.example/p/{i}" for i in range(5)))
    result = parse_source(plain, Feed("s", feed.url, max_entries=3), feed.url, XML)
    assert [e.link for e in result.entries] == [f"https://news.example/p/{i}" for i in range(3)]


def test_sitemap_detection_by_root_element() -> None:
    assert sitemap_root(urlset("https://x.example/a")) == "urlset"
    assert sitemap_root(b"\xef\xbb\xbf\n  " + index("https://x.example/s.xml")) == "sitemapindex"
    assert sitemap_root(b"<urlset><url><loc>https://x.example/a</loc></url></urlset>") == "urlset"
    assert sitemap_root(b'<urlset xmlns="urn:other"/>') is None
    assert sitemap_root(b'<rss version="2.0"><channel/></rss>') is None
    assert sitemap_root(b"not xml") is None


def test_unescaped_ampersands_are_read_as_meant() -> None:
    body = urlset("https://news.example/a.php?id=1&amp;p=2", "https://news.example/b.php?id=2&p=3")
    body = body.replace(b"&amp;", b"&")
    feed = Feed("s", "https://news.example/sitemap.xml")
    result = parse_source(body, feed, feed.url, XML)
    assert result.status == "ok" and "unescaped '&'" in result.malformed
    assert [e.link for e in result.entries] == [
        "https://news.example/a.php?id=1&p=2",
        "https://news.example/b.php?id=2&p=3",
    ]


def test_a_billion_laughs_document_is_cheap_and_expands_nothing() -> None:
    laughs = '<!ENTITY l0 "lollollollollollollollollollol">' + "".join(
        f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 12)
    )
    body = (
        f'<?xml version="1.0"?><!DOCTYPE urlset [{laughs}]><urlset xmlns="{SM}">'
        + "<url><loc>https://x.example/ok</loc></url>"
        + "<url><loc>https://x.example/&l11;</loc><lastmod>&l11;</lastmod></url>" * 1000
        + "</urlset>"
    ).encode()
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = parse_source(body, Feed("s", "https://x.example/s.xml"), "https://x.example/", XML)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5 and peak < 50 << 20
    assert "lollol" not in repr(result)
    # libxml2 itself refuses the amplification; if it ever reads on, nothing is expanded
    if result.status == "ok":
        assert [e.link for e in result.entries if e.link] == ["https://x.example/ok"]
    else:
        assert result.error.reason == "feed_parse_error"


def test_every_kind_of_source_keeps_links_as_requested() -> None:
    """One rule for RSS, JSON Feed and sitemaps alike: the link is what the client sends."""
    from ingest.net import request_url
    from ingest.sources import FeedEntry

    assert request_url("https://Pub.Example/a b/ü?q=x y#top") == (
        "https://pub.example/a%20b/%C3%BC?q=x%20y#top"
    )
    assert request_url("https://pub.example/already%20encoded") == (
        "https://pub.example/already%20encoded"
    )
    assert request_url("https://[::1") == "https://[::1"  # unparseable: the fetch refuses it
    # a stray '%' is escaped alone; the valid escapes beside it keep naming the same page
    assert request_url("https://p.example/a%zz/%41?q=100%&r=%41") == (
        "https://p.example/a%25zz/%41?q=100%25&r=%41"
    )
    entry = FeedEntry("f", "https://pub.example/f.xml", "https://pub.example/a b")
    assert entry.link == "https://pub.example/a%20b"
    assert FeedEntry("f", "u", "mailto:x y").link == "mailto:x y"  # not fetched: untouched
