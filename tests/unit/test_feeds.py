"""Feed parsing: RSS 2.0, RSS 1.0, Atom, JSON Feed, relative links, broken input."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from ingest.config import Feed
from ingest.sources.detect import parse_source
from ingest.sources.jsonfeed import json_depth
from ingest.sources.markup import plain_text
from tests.helpers.feeds import JSON_10, RSS2, jsonfeed

FEED = Feed("t", "https://news.example/feeds/main.xml")

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
    result = parse_source(RSS2, FEED, FEED.url, "application/rss+xml")
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
    (entry,) = parse_source(RSS1, FEED, FEED.url, "application/rdf+xml").entries
    assert entry.link == "https://news.example/a/2"
    assert entry.published == datetime(2025, 12, 18, 8, 0, tzinfo=UTC)
    assert entry.authors == ["John Roe"]


def test_atom_relative_links_resolved() -> None:
    result = parse_source(ATOM_RELATIVE, FEED, FEED.url, "application/atom+xml")
    links = [e.link for e in result.entries]
    assert links == [
        "https://news.example/science/stories/3?utm_source=atom",
        "https://news.example/economy/4",
    ]
    assert result.entries[0].updated == datetime(2025, 12, 18, 9, 30, tzinfo=UTC)


def test_relative_links_without_xml_base_use_the_feed_url() -> None:
    body = RSS2.replace(b"https://news.example/a/1", b"/a/1")
    (entry, _) = parse_source(body, FEED, "https://mirror.example/feeds/x.xml", "text/xml").entries
    assert entry.link == "https://mirror.example/a/1"


def test_broken_xml_is_a_feed_failure_not_an_exception() -> None:
    result = parse_source(b"<rss><channel><item><title>oops", FEED, FEED.url, "text/xml")
    assert result.status in ("failed", "ok")
    if result.status == "ok":  # feedparser recovered something: it must say so
        assert result.malformed
    result = parse_source(b"\x00\x01 not xml at all {", FEED, FEED.url, "text/xml")
    assert result.status == "failed" and result.error.reason == "feed_parse_error"


def test_html_page_instead_of_feed_fails() -> None:
    result = parse_source(b"<html><body><p>Welcome</p></body></html>", FEED, FEED.url, "text/html")
    assert result.status == "failed"


# ------------------------------------------------------------------ JSON Feed

JSON_11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Ledger",
    "home_page_url": "https://news.example/",
    "feed_url": "https://news.example/feeds/main.json",
    "language": "de",
    "authors": [{"name": "Desk"}],
    "items": [
        {
            "id": "1",
            "url": "/a/1",
            "title": "  First   story ",
            "content_html": "<p>Lead <b>text</b> &amp; more</p>",
            "date_published": "2025-12-18T10:15:00+02:00",
            "date_modified": "2025-12-18T11:00:00Z",
            "authors": [{"name": "Jane Doe"}, {"url": "https://x.example/nameless"}],
            "tags": ["World", 7, " "],
            "language": "en-GB",
        },
        {
            "id": "2",
            "external_url": "stories/2",
            "title": "Second",
            "summary": "The summary",
            "content_text": "Not the summary",
            "date_published": "yesterday",
        },
        {"id": "3", "title": "No link", "content_text": "Only text"},
    ],
}


def test_json_feed_11_fields_relative_links_authors_dates_language() -> None:
    result = parse_source(jsonfeed(JSON_11), FEED, FEED.url, "text/plain")
    assert (result.status, result.kind, result.malformed) == ("ok", "json", None)
    first, second, third = result.entries  # dated newest first, then the undated
    assert first.link == "https://news.example/a/1"
    assert first.title == "First story"
    assert first.summary == "Lead text & more"  # content_html without tags: no summary given
    assert first.published == datetime(2025, 12, 18, 8, 15, tzinfo=UTC)
    assert first.updated == datetime(2025, 12, 18, 11, 0, tzinfo=UTC)
    assert first.authors == ["Jane Doe"] and first.categories == ["World"]
    assert first.language == "en-GB"  # the item's own, over the feed's
    # relative to the feed's own feed_url, as a reference in a document is
    assert second.link == "https://news.example/feeds/stories/2"
    assert second.summary == "The summary" and second.published is None  # a bad date
    assert second.authors == ["Desk"]  # the feed's authors when the item names none
    assert second.language == "de"  # the feed's language, over the feeds file's
    assert third.link is None and third.summary == "Only text"


def test_json_feed_10_author_objects_and_fallbacks() -> None:
    feed = Feed("old", "https://news.example/old.json", language="fr")
    result = parse_source(jsonfeed(JSON_10), feed, feed.url, "application/json")
    a, b = result.entries
    assert a.authors == ["Item Author"] and b.authors == ["Feed Author"]
    assert b.link == "https://news.example/old/b"  # no feed_url/home_page_url: the fetch URL
    assert b.published == datetime(2025, 12, 16, tzinfo=UTC)
    assert a.language == b.language == "fr"  # 1.0 has no language: the feeds file's


def test_json_feed_keeps_the_newest_max_entries() -> None:
    items = [
        {"id": str(i), "url": f"/s/{i}", "date_published": f"2025-12-{10 + i:02d}T00:00:00Z"}
        for i in (3, 1, 4, 0, 2)
    ]
    doc = {"version": "https://jsonfeed.org/version/1.1", "items": items}
    feed = Feed("t", "https://news.example/f.json", max_entries=2)
    result = parse_source(jsonfeed(doc), feed, feed.url, "application/feed+json")
    assert [e.link for e in result.entries] == [
        "https://news.example/s/4",
        "https://news.example/s/3",
    ]
    assert result.entries_dropped == 3


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "malformed JSON: "),
        (b'{"version": "https://jsonfeed.org/version/1", "title": "x",}', "at line 1 column"),
        (b"\xef\xbb\xbf{\xff\xfe}", "malformed JSON"),
        (b'{"items": []}', "not a JSON Feed"),
        (b'{"version": "https://example.org/v1", "items": []}', "not a JSON Feed"),
        (b"[1, 2, 3]", "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', '"items" list'),
        (b'{"version": "https://jsonfeed.org/version/1", "x": ' + b"[" * 60 + b"]" * 60 + b"}",
         "nested deeper than 50"),
    ],
)  # fmt: skip
def test_bad_json_is_a_failed_feed_with_a_clear_detail(body: bytes, detail: str) -> None:
    result = parse_source(body, FEED, FEED.url, "application/json")
    assert result.status == "failed" and result.error.reason == "feed_parse_error"
    assert detail in result.error.detail and FEED.url in result.error.detail
    assert "\n" not in result.error.detail


def test_json_depth_is_counted_outside_strings() -> None:
    assert json_depth('{"a": "[[[[[[{{{{", "b": [[1], {"c": [2]}]}') == 4
    assert json_depth("[]" * 100_000) == 1
    started = time.monotonic()
    assert json_depth("[" * 5_000_000) == 5_000_000
    assert time.monotonic() - started < 5


_TEN_MB = 10 * 2**20


@pytest.mark.timeout(60)  # quadratic scanning would take hours on these, not seconds
@pytest.mark.parametrize(
    ("shape", "depth"),
    [
        ("{" + '"\\' * (_TEN_MB // 2), 1),  # an unterminated string of escaped quotes
        ('["' + "\\" * _TEN_MB, 1),  # a long run of backslashes, unterminated
        ('"\\"' * (_TEN_MB // 3), 0),  # escaped quotes, closed and reopened
        ('["' + '\\"' * (_TEN_MB // 3) + '"]', 1),
        ('{"a":' * (_TEN_MB // 5), _TEN_MB // 5),  # deep nesting
        ("[" * (_TEN_MB // 2) + '"' + "\\" * (_TEN_MB // 2), _TEN_MB // 2),
    ],
    ids=["escaped-quotes", "backslashes", "reopened", "closed", "deep", "deep-then-open"],
)
def test_json_depth_is_linear_on_adversarial_shapes(shape: str, depth: int) -> None:
    assert json_depth(shape) == depth


def test_a_ten_megabyte_adversarial_json_feed_is_refused_quickly() -> None:
    body = '{"version": "https://jsonfeed.org/version/1.1", "items": [' + '"\\' * (_TEN_MB // 2)
    started = time.monotonic()
    result = parse_source(body.encode(), FEED, FEED.url, "application/json")
    print(f"10 MB adversarial JSON Feed refused in {time.monotonic() - started:.2f}s")
    assert result.status == "failed" and "malformed JSON" in result.error.detail


@pytest.mark.timeout(60)  # a quadratic parser takes minutes on these (html.parser did)
@pytest.mark.parametrize("fragment", ["<a ", "<!--", "<p>x", "<script>", "&amp;", "</"])
def test_summaries_of_hostile_markup_are_read_in_linear_time(fragment: str) -> None:
    hostile = "<p>Intro.</p>" + fragment * (2_000_000 // len(fragment))
    text = plain_text(hostile)
    assert text is None or text.startswith("Intro.")


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<script>alert(1)</script><p>hi</p>", "hi"),
        ("<p>one</p><p>two</p>", "one two"),
        ("line<br>break<br/>again", "line break again"),
        ("<style>p { color: red }</style><div>styled</div>", "styled"),
        ("in<b>line</b> <a href=x>link</a>", "inline link"),
        ("<p>Tom &amp; Jerry &lt;3</p>", "Tom & Jerry <3"),
        ("<noscript><img src=x></noscript><template><p>t</p></template>kept", "kept"),
        ("<p>unclosed <script>document.write('x')", "unclosed"),
        ("<ul><li>a</li><li>b</li></ul>", "a b"),
        ("plain text, no markup", "plain text, no markup"),
        ("<script>", None),
        ("a\x00b\x1fc", "abc"),  # characters no XML tree may hold carry no text
        ("<!-- comment -->x", "x"),
    ],
)
def test_summaries_are_the_text_a_reader_sees(html: str, text: str | None) -> None:
    assert plain_text(html) == text
