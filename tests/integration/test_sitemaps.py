"""Sitemaps as sources, over real loopback HTTP: urlset, Google News, indexes, gzip, hostile XML.

No mocks: the fixture server answers real requests, gzip is real gzip, and index children
are fetched through the same HttpClient as everything else (its hit counts show which).
"""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.config import Feed, Settings
from ingest.lake import read_committed
from ingest.net import HttpClient
from ingest.run import run
from ingest.sources import PollResult, poll
from ingest.sources.sitemap import MAX_CHILD_SITEMAPS
from ingest.state import FeedState
from ingest.store import LocalStore
from ingest.warc import read_record
from newsflow_dev.loopback import FixtureServer, Route, paragraphs
from tests.helpers.sitemaps import NEWS, SM, XML, index, news_sitemap, urlset


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "allow_networks": ["127.0.0.0/8"],
        "http_retries": 0,
        "total_timeout": 5.0,
        "read_timeout": 3.0,
        "workers": 2,
        "per_host_concurrency": 4,
        "progress": False,
    }
    return Settings.from_env({}, **{**base, **kw})


@pytest.fixture
def client() -> Iterator[HttpClient]:
    c = HttpClient(settings())
    yield c
    c.close()


@pytest.fixture
def srv() -> Iterator[FixtureServer]:
    with FixtureServer().running() as server:
        yield server


def poll_once(client: HttpClient, feed: Feed, **kw: Any) -> PollResult:
    return poll(client, feed, FeedState(feed.name, feed.url), **kw)


# ------------------------------------------------------------------ documents


def test_google_news_sitemap(client: HttpClient, srv: FixtureServer) -> None:
    body = news_sitemap(
        [
            {"loc": "/world/talks", "date": "2025-12-18T10:15:00+02:00",
             "title": "Talks resume &amp; stall", "language": "de", "keywords": "Talks, Berlin",
             "lastmod": "2025-12-18T12:00:00Z"},
            {"loc": srv.url("/world/flood"), "date": "2025-12-19", "title": " Flood  warning "},
        ]
    )  # fmt: skip
    srv.add("/news-sitemap.xml", Route(body, content_type="text/xml; charset=utf-8"))
    feed = Feed("ledger-news", srv.url("/news-sitemap.xml"), language="fr")
    result = poll_once(client, feed)
    assert (result.status, result.kind, result.malformed) == ("ok", "sitemap", None)
    flood, talks = result.entries  # newest first
    assert talks.link == srv.url("/world/talks")  # relative <loc> resolved
    assert talks.title == "Talks resume & stall"
    assert talks.published == datetime(2025, 12, 18, 8, 15, tzinfo=UTC)
    assert talks.updated == datetime(2025, 12, 18, 12, 0, tzinfo=UTC)
    assert talks.language == "de" and talks.categories == ["Talks", "Berlin"]
    assert talks.site_name == "The Example Ledger"
    assert flood.title == "Flood warning" and flood.updated is None
    assert flood.published == datetime(2025, 12, 19, tzinfo=UTC)
    assert (flood.feed, flood.feed_url) == ("ledger-news", feed.url)


def test_kind_forces_or_excludes_sitemaps(client: HttpClient, srv: FixtureServer) -> None:
    srv.add("/s.bin", Route(urlset(srv.url("/a")), content_type="application/octet-stream"))
    srv.add("/rss.xml", Route(b'<rss version="2.0"><channel><item><link>/x</link></item>'
                              b"</channel></rss>", content_type="application/rss+xml"))  # fmt: skip
    srv.add("/j.json", Route(b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
                             content_type="application/json"))  # fmt: skip
    forced = poll_once(client, Feed("s", srv.url("/s.bin"), kind="sitemap"))
    assert forced.kind == "sitemap" and [e.link for e in forced.entries] == [srv.url("/a")]
    not_sitemap = poll_once(client, Feed("r", srv.url("/rss.xml"), kind="sitemap"))
    assert not_sitemap.status == "failed" and not_sitemap.error.reason == "feed_parse_error"
    assert "not a sitemap (the root element is <rss>)" in not_sitemap.error.detail
    assert poll_once(client, Feed("j", srv.url("/j.json"), kind="sitemap")).status == "failed"
    # `kind: feed` never reads a sitemap as one
    as_feed = poll_once(client, Feed("f", srv.url("/s.bin"), kind="feed"))
    assert as_feed.status == "failed" and as_feed.kind != "sitemap"
    # `auto` tells each by its content
    assert poll_once(client, Feed("a", srv.url("/s.bin"))).kind == "sitemap"
    assert poll_once(client, Feed("b", srv.url("/rss.xml"))).kind == "rss"
    assert poll_once(client, Feed("c", srv.url("/j.json"))).kind == "json"


def test_304_on_the_sitemap(client: HttpClient, srv: FixtureServer) -> None:
    srv.add("/sitemap.xml", Route(urlset(srv.url("/a")), content_type=XML, conditional=True))
    feed = Feed("s", srv.url("/sitemap.xml"))
    first = poll_once(client, feed)
    assert first.status == "ok" and first.etag
    second = poll(client, feed, FeedState("s", feed.url, etag=first.etag))
    assert second.status == "not_modified" and second.entries == []
    assert srv.hits["/sitemap.xml"] == 2


# ------------------------------------------------------------------ gzip


def bomb(decompressed: int) -> bytes:
    """gzip of `decompressed` zero bytes, built without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(decompressed >> 20)), packer.flush()])


@pytest.mark.parametrize("ctype", ["application/x-gzip", "application/gzip", None])
def test_gzip_sitemap_whatever_the_content_type(
    client: HttpClient, srv: FixtureServer, ctype: str | None
) -> None:
    srv.add("/sitemap.xml.gz", Route(gzip.compress(urlset(srv.url("/a"))), content_type=ctype))
    result = poll_once(client, Feed("s", srv.url("/sitemap.xml.gz")))
    assert (result.status, result.kind) == ("ok", "sitemap")
    assert [e.link for e in result.entries] == [srv.url("/a")]


def test_gzip_bomb_is_too_large_quickly_in_bounded_memory(srv: FixtureServer) -> None:
    limit = 1 << 20
    payload = bomb(128 << 20)  # 128 MiB of zeros in ~130 KB, under the byte limit
    assert len(payload) < limit
    srv.add("/sitemap.xml.gz", Route(payload, content_type="application/gzip"))
    client = HttpClient(settings(max_bytes=limit))
    try:
        tracemalloc.start()
        started = time.monotonic()
        result = poll_once(client, Feed("s", srv.url("/sitemap.xml.gz")))
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
    assert result.status == "failed" and result.error.reason == "too_large"
    assert "gunzipped" in result.error.detail
    assert elapsed < 3, elapsed
    assert peak < 8 * limit, peak


def test_truncated_gzip_is_a_decode_error(client: HttpClient, srv: FixtureServer) -> None:
    srv.add("/s.xml.gz", Route(gzip.compress(urlset(srv.url("/a")))[:-12], content_type=None))
    result = poll_once(client, Feed("s", srv.url("/s.xml.gz")))
    assert result.status == "failed" and result.error.reason == "decode_error"


# ------------------------------------------------------------------ hostile XML


def test_xxe_is_not_expanded(client: HttpClient, srv: FixtureServer, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4711", "utf-8")
    srv.add("/dtd-secret", Route(b"REMOTE-SECRET-0815", content_type="text/plain"))
    body = (
        '<?xml version="1.0"?>\n'
        "<!DOCTYPE urlset [\n"
        f'  <!ENTITY xxe SYSTEM "{secret.as_uri()}">\n'
        f'  <!ENTITY remote SYSTEM "{srv.url("/dtd-secret")}">\n'
        f'  <!ENTITY % pe SYSTEM "{srv.url("/dtd-secret")}"> %pe;\n'
        "]>\n"
        f'<urlset xmlns="{SM}" xmlns:news="{NEWS}">'
        f"<url><loc>{srv.url('/a/')}&xxe;</loc><lastmod>&xxe;</lastmod></url>"
        f"<url><loc>&remote;</loc></url>"
        f"<url><loc>{srv.url('/fine')}</loc><news:news><news:title>&xxe;</news:title>"
        f"<news:publication_date>2025-12-18</news:publication_date></news:news></url>"
        "</urlset>"
    ).encode()
    srv.add("/sitemap.xml", Route(body, content_type=XML))
    result = poll_once(client, Feed("s", srv.url("/sitemap.xml")))
    assert result.status == "ok"
    dump = repr(result)
    assert "TOPSECRET" not in dump and "REMOTE-SECRET" not in dump
    assert srv.hits["/dtd-secret"] == 0  # no network access from the parser
    # values made of entity references are dropped, never read around the reference
    assert [e.link for e in result.entries] == [srv.url("/fine"), None, None]
    assert result.entries[0].title is None
    assert "4 value(s) made of entity references ignored" in result.malformed


# ------------------------------------------------------------------ sitemap indexes


def test_index_with_a_404_and_a_gzip_child(client: HttpClient, srv: FixtureServer) -> None:
    srv.add("/s/world.xml", Route(urlset(
        (srv.url("/world/1"), "2025-12-18T08:00:00Z"),
        (srv.url("/shared"), "2025-12-10T00:00:00Z"),
    ), content_type=XML))  # fmt: skip
    srv.add("/s/economy.xml.gz", Route(gzip.compress(urlset(
        (srv.url("/economy/1"), "2025-12-17T08:00:00Z"),
        (srv.url("/shared"), "2025-12-16T00:00:00Z"),  # the newer record of the same link
    )), content_type="application/x-gzip"))  # fmt: skip
    body = index(
        ("/s/world.xml", "2025-12-18"),
        ("/s/missing.xml", "2025-12-18"),
        (srv.url("/s/economy.xml.gz"), "2025-12-17"),
    )
    srv.add("/sitemap_index.xml", Route(body, content_type=XML, conditional=True))
    feed = Feed("idx", srv.url("/sitemap_index.xml"))
    result = poll_once(client, feed)
    assert (result.status, result.kind) == ("ok", "sitemapindex")
    assert result.sitemap_counts == {"failed": 1, "fetched": 2}
    assert [e.link for e in result.entries] == [
        srv.url("/world/1"), srv.url("/economy/1"), srv.url("/shared")]  # fmt: skip
    shared = result.entries[2]
    assert shared.updated == datetime(2025, 12, 16, tzinfo=UTC)  # merged by link, newest kept
    assert all(srv.hits[p] == 1 for p in ("/s/world.xml", "/s/missing.xml", "/s/economy.xml.gz"))
    # every followed child is dated in the index and none failed transiently: the index's
    # validators stand for its children, so the next poll may be a 304
    assert result.etag
    again = poll(client, feed, FeedState("idx", feed.url, etag=result.etag))
    assert again.status == "not_modified"
    assert srv.hits["/s/world.xml"] == 1


def test_index_follows_only_the_newest_children(client: HttpClient, srv: FixtureServer) -> None:
    total = MAX_CHILD_SITEMAPS + 5
    children = []
    for day in range(1, total + 1):
        path = f"/s/day-{day:02d}.xml"
        srv.add(path, Route(urlset((srv.url(f"/a/{day}"), f"2025-11-{day:02d}")), content_type=XML))
        children.append((path, f"2025-11-{day:02d}T00:00:00Z"))
    children = children[1::2] + children[::2]  # not in date order
    srv.add("/index.xml", Route(index(*children), content_type=XML))
    result = poll_once(client, Feed("idx", srv.url("/index.xml")))
    assert result.sitemap_counts == {"fetched": MAX_CHILD_SITEMAPS, "over_limit": 5}
    fetched = {day for day in range(1, total + 1) if srv.hits[f"/s/day-{day:02d}.xml"]}
    assert fetched == set(range(6, total + 1))  # the newest N, each once
    assert all(srv.hits[f"/s/day-{day:02d}.xml"] == 1 for day in fetched)
    assert [e.link for e in result.entries][:2] == [srv.url(f"/a/{total}"), srv.url("/a/24")]
    # the limit is a parameter too, and max_entries cuts the merged entries
    srv.hits.clear()
    result = poll_once(client, Feed("idx", srv.url("/index.xml"), max_entries=2), max_sitemaps=3)
    assert sorted(p for p in srv.hits if p.startswith("/s/")) == [
        "/s/day-23.xml", "/s/day-24.xml", "/s/day-25.xml"]  # fmt: skip
    assert [e.link for e in result.entries] == [srv.url("/a/25"), srv.url("/a/24")]
    assert result.entries_dropped == 1


def test_children_older_than_max_age_days_are_skipped(
    client: HttpClient, srv: FixtureServer
) -> None:
    now = datetime.now(UTC)
    srv.add("/s/new.xml", Route(urlset(srv.url("/new")), content_type=XML))
    srv.add("/s/old.xml", Route(urlset(srv.url("/old")), content_type=XML))
    srv.add("/s/undated.xml", Route(urlset(srv.url("/undated")), content_type=XML))
    body = index(
        ("/s/old.xml", (now - timedelta(days=10)).isoformat()),
        ("/s/new.xml", (now - timedelta(hours=5)).isoformat()),
        "/s/undated.xml",
    )
    srv.add("/index.xml", Route(body, content_type=XML, conditional=True))
    result = poll_once(client, Feed("idx", srv.url("/index.xml"), max_age_days=3))
    assert result.sitemap_counts == {"fetched": 2, "too_old": 1}
    assert srv.hits["/s/old.xml"] == 0
    assert [e.link for e in result.entries] == [srv.url("/new"), srv.url("/undated")]
    # a followed child without a lastmod: the index's validators cannot vouch for it
    assert result.etag is None and result.last_modified is None


def test_an_index_inside_an_index_is_skipped_and_counted(
    client: HttpClient, srv: FixtureServer
) -> None:
    srv.add("/s/a.xml", Route(urlset(srv.url("/a")), content_type=XML))
    srv.add("/s/inner-index.xml", Route(index("/s/deep.xml"), content_type=XML))
    srv.add("/s/deep.xml", Route(urlset(srv.url("/deep")), content_type=XML))
    srv.add("/index.xml", Route(index("/s/a.xml", "/s/inner-index.xml"), content_type=XML))
    result = poll_once(client, Feed("idx", srv.url("/index.xml")))
    assert result.status == "ok"
    assert result.sitemap_counts == {"fetched": 1, "nested_index": 1}
    assert [e.link for e in result.entries] == [srv.url("/a")]
    assert srv.hits["/s/deep.xml"] == 0  # one level only


def test_an_index_whose_children_all_fail_is_a_failed_source(
    client: HttpClient, srv: FixtureServer
) -> None:
    limit = 1 << 20
    srv.add("/s/bomb.xml.gz", Route(bomb(64 << 20), content_type="application/gzip"))
    srv.add("/s/broken.xml", Route(b"<urlset><url><loc>", content_type=XML, status=500))
    srv.add("/index.xml", Route(index("/s/missing.xml", "/s/bomb.xml.gz"), content_type=XML))
    srv.add("/index2.xml", Route(index("/s/broken.xml"), content_type=XML))
    small = HttpClient(settings(max_bytes=limit))
    try:
        result = poll_once(small, Feed("idx", srv.url("/index.xml")))
        transient = poll_once(small, Feed("idx2", srv.url("/index2.xml")))
    finally:
        small.close()
    assert result.status == "failed" and result.error.reason == "http_404"
    assert "all 2 child sitemap(s) failed" in result.error.detail
    assert result.sitemap_counts == {"failed": 2}
    assert transient.status == "failed" and transient.error.transient  # a 500: retried later


def test_index_children_stay_behind_the_address_guard(
    client: HttpClient, srv: FixtureServer
) -> None:
    srv.add("/s/a.xml", Route(urlset(srv.url("/a")), content_type=XML))
    body = index(
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "/s/a.xml",
    )
    srv.add("/index.xml", Route(body, content_type=XML))
    result = poll_once(client, Feed("idx", srv.url("/index.xml")))
    assert result.status == "ok" and [e.link for e in result.entries] == [srv.url("/a")]
    assert result.sitemap_counts == {"bad_url": 1, "failed": 1, "fetched": 1}


# ------------------------------------------------------------------ end to end


def page(title: str, seed: int) -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs(seed))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><article><h1>{title}</h1>{body}</article></body></html>"
    ).encode()


def test_run_with_a_json_feed_a_news_sitemap_and_an_index(tmp_path: Path) -> None:
    import json

    store = LocalStore(tmp_path / "store")
    with FixtureServer().running() as srv:
        titles = {
            "/j/1": ("Harbour talks resume", "2025-12-18T07:30:00Z"),
            "/j/2": ("Budget vote delayed", "2025-12-17T16:00:00+01:00"),
            "/n/1": ("Flood barriers hold", "2025-12-18T09:45:00+00:00"),
            "/n/2": ("Rail strike ends", "2025-12-16"),
        }
        for i, (path, (title, _)) in enumerate(titles.items()):
            srv.add(path, Route(page(title, 500 + i)))
        feed_doc = {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Ledger",
            "items": [
                {"id": p, "url": p, "title": titles[p][0], "date_published": titles[p][1]}
                for p in ("/j/1", "/j/2")
            ],
        }
        srv.add("/feed.json", Route(json.dumps(feed_doc).encode(), content_type="application/json"))
        sitemap = news_sitemap(
            [{"loc": srv.url(p), "title": titles[p][0], "date": titles[p][1]}
             for p in ("/n/1", "/n/2")]
        )  # fmt: skip
        srv.add("/news.xml.gz", Route(gzip.compress(sitemap), content_type="application/gzip"))
        # an index, parsed in a worker process, its child fetched by the poller
        srv.add("/i/1", Route(page("Archive opens", 600)))
        srv.add("/archive.xml", Route(urlset((srv.url("/i/1"), "2025-12-15")), content_type=XML))
        srv.add("/index.xml", Route(index(("/archive.xml", "2025-12-15")), content_type=XML))
        feeds = [
            Feed("ledger-json", srv.url("/feed.json")),
            Feed("ledger-news", srv.url("/news.xml.gz"), kind="sitemap"),
            Feed("ledger-archive", srv.url("/index.xml")),
        ]
        report = run(store, feeds, settings())
    assert report.feeds_failed == 0 and report.articles_written == 5, report.to_dict()
    rows = {r["url"]: r for r in read_committed(store).to_pylist()}
    assert set(rows) == {srv.url(p) for p in [*titles, "/i/1"]}
    archive = rows.pop(srv.url("/i/1"))
    assert archive["source"] == "ledger-archive" and archive["title"] == "Archive opens"
    assert archive["published_at"] == datetime(2025, 12, 15, tzinfo=UTC)
    for path, (title, date) in titles.items():
        row = rows[srv.url(path)]
        expected = datetime.fromisoformat(date.replace("Z", "+00:00"))
        if expected.tzinfo is None:
            expected = expected.replace(tzinfo=UTC)
        assert row["title"] == title
        assert row["published_at"] == expected and row["published_at_source"] == "feed"
        assert row["source"] == ("ledger-json" if path.startswith("/j/") else "ledger-news")


def test_a_loc_with_a_space_is_stored_as_requested(tmp_path: Path) -> None:
    """`<loc>…/a b.html</loc>` is requested as `a%20b.html`: the row's url and the WARC
    record name that URL, not the raw space (a URI may not hold one)."""
    store = LocalStore(tmp_path / "store")
    with FixtureServer().running() as srv:
        srv.add("/news/a%20b.html", Route(page("Spaced out", 700)))
        raw_loc = srv.url("/news/a b.html")
        srv.add("/s.xml", Route(urlset((raw_loc, "2025-12-15")), content_type=XML))
        report = run(store, [Feed("spaced", srv.url("/s.xml"))], settings())
        requested = [path for path in srv.hits if path.startswith("/news/")]
    assert report.articles_written == 1, report.to_dict()
    assert requested == ["/news/a%20b.html"]
    (row,) = read_committed(store).to_pylist()
    wire = srv.url("/news/a%20b.html")
    assert (row["url"], row["final_url"]) == (wire, wire)
    member = store.get_range(row["warc_file"], row["warc_offset"], row["warc_length"])
    record, _ = read_record(member)
    assert record.url == wire and record.final_url == wire
    assert b"a b.html" not in zlib.decompress(member, 16 + zlib.MAX_WBITS)
