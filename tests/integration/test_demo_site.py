"""The offline demo publisher: what `ingest demo`, the engine tests and the benchmark rely on.

Each test pins one property the ingestion pipeline is expected to cope with (feed flavours,
relative links, conditional GET, a legacy charset, chrome that extraction must drop), so a
change to the site that silently removes one of those challenges fails here.
"""

from __future__ import annotations

import email.utils
import json
import re
import urllib.error
import urllib.request
import urllib.robotparser
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import feedparser
import pytest
import yaml

from newsflow_dev.demo_site import DemoSite, article_paths, load_site, serve_site, write_feeds_file
from tests.helpers.demo_site import EXPECTED_FEEDS

GOLDEN_DIR = Path(__file__).parents[1] / "golden"
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("*.json"))
MIN_RATIO = 0.90
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def site() -> DemoSite:
    return load_site()


@pytest.fixture(scope="module")
def base_url(site: DemoSite) -> Iterator[str]:
    with serve_site(site, now=NOW) as url:
        yield url


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET returning (status, headers, body) for 2xx, 3xx and 4xx alike."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def parse_feed(base_url: str, path: str) -> feedparser.FeedParserDict:
    status, headers, body = fetch(base_url + path)
    assert status == 200
    return feedparser.parse(
        body,
        response_headers={
            "content-location": base_url + path,
            **{k.lower(): v for k, v in headers.items()},
        },
    )


def strip_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# ------------------------------------------------------------------------------ serving


def test_serves_on_a_free_loopback_port(base_url: str) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
    assert int(base_url.rsplit(":", 1)[1]) > 0
    status, headers, body = fetch(base_url + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"The Meridian Ledger" in body


def test_two_servers_get_distinct_ports_and_stop_on_exit(site: DemoSite) -> None:
    with serve_site(site) as first, serve_site(site) as second:
        assert first != second
        assert fetch(first + "/robots.txt")[0] == 200
        assert fetch(second + "/robots.txt")[0] == 200
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(first + "/robots.txt", timeout=2)


def test_server_is_quiet(base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    fetch(base_url + "/world/rss.xml")
    fetch(base_url + "/no/such/page")
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ""


@pytest.mark.parametrize(
    "path", ["/no/such/page", "/world/no-such-story", "/private/drafts", "/world/rss"]
)
def test_unknown_paths_are_404(base_url: str, path: str) -> None:
    status, _, _ = fetch(base_url + path)
    assert status == 404


def test_robots_txt_blocks_only_private(base_url: str) -> None:
    status, headers, body = fetch(base_url + "/robots.txt")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    assert "Disallow: /private/" in body.decode("utf-8")
    parser = urllib.robotparser.RobotFileParser()
    parser.parse(body.decode("utf-8").splitlines())
    assert parser.can_fetch("newsflow", base_url + "/world/norland-coalition-talks-collapse")
    assert parser.can_fetch("newsflow", base_url + "/top.rdf")
    assert not parser.can_fetch("newsflow", base_url + "/private/drafts")


# ------------------------------------------------------------------------------ feeds


@pytest.mark.parametrize("path", sorted(EXPECTED_FEEDS))
def test_feed_parses_cleanly(base_url: str, path: str) -> None:
    version, media_type, count = EXPECTED_FEEDS[path]
    status, headers, _ = fetch(base_url + path)
    assert status == 200
    assert headers["Content-Type"].split(";")[0] == media_type
    parsed = parse_feed(base_url, path)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == version
    assert len(parsed.entries) == count
    for entry in parsed.entries:
        assert entry.get("title")
        assert entry.get("id")
        assert entry.get("published_parsed") or entry.get("updated_parsed")
        assert entry.get("summary")
        assert entry.get("author")
        assert entry.get("tags")


def test_relative_feed_links_resolve_onto_the_served_site(base_url: str, site: DemoSite) -> None:
    relative = [f for f in site.feeds if f.relative_links]
    assert [f.path for f in relative] == ["/science/atom.xml"]
    _, _, raw = fetch(base_url + "/science/atom.xml")
    assert base_url.encode() not in raw  # the links really are relative on the wire
    parsed = parse_feed(base_url, "/science/atom.xml")
    science = {base_url + a.path for a in site.articles if a.section == "science"}
    links = [e.link for e in parsed.entries]
    assert set(links) == science
    for link in links:
        assert fetch(link)[0] == 200


def test_absolute_feeds_link_to_the_served_base(base_url: str) -> None:
    for path in ("/world/rss.xml", "/economy/rss.xml", "/top.rdf"):
        for entry in parse_feed(base_url, path).entries:
            if "link" in entry:
                assert entry.link.startswith(base_url + "/"), entry.link


def test_exactly_one_entry_has_no_link(base_url: str) -> None:
    linkless = [
        (path, e.title)
        for path in EXPECTED_FEEDS
        for e in parse_feed(base_url, path).entries
        if not e.get("link")
    ]
    assert linkless == [("/economy/rss.xml", "Markets live: our rolling coverage resumes at 08:00")]


def test_top_stories_repeat_section_entries(base_url: str) -> None:
    section_links = {
        strip_query(e.link)
        for path in ("/world/rss.xml", "/economy/rss.xml", "/science/atom.xml")
        for e in parse_feed(base_url, path).entries
        if e.get("link")
    }
    top = [e.link for e in parse_feed(base_url, "/top.rdf").entries]
    assert {strip_query(link) for link in top} <= section_links
    tracked = [link for link in top if urlsplit(link).query]
    assert tracked == [
        base_url + "/economy/bank-of-valdora-holds-rates?utm_source=rss&utm_medium=feed"
    ]


def test_feed_dates_are_relative_to_now_and_match_the_pages(base_url: str, site: DemoSite) -> None:
    published: dict[str, datetime] = {}
    for path in EXPECTED_FEEDS:
        for entry in parse_feed(base_url, path).entries:
            if entry.get("link"):
                stamp = entry.get("published_parsed") or entry.get("updated_parsed")
                published[strip_query(entry.link)] = datetime(*stamp[:6], tzinfo=UTC)
    assert all(NOW - timedelta(days=7) < when < NOW for when in published.values())
    for art in site.articles:
        _, _, body = fetch(base_url + art.served_path)
        html = body.decode("utf-8" if art.encoding == "utf-8" else "cp1251")
        meta = re.search(r'<meta property="article:published_time" content="([^"]+)"', html)
        assert meta, art.slug
        page_time = datetime.fromisoformat(meta.group(1))
        assert page_time.utcoffset() is not None
        assert page_time == published[base_url + art.path], art.slug


# ------------------------------------------------------------------------------ conditional GET


@pytest.mark.parametrize("path", sorted(EXPECTED_FEEDS))
def test_conditional_get_on_etag(base_url: str, path: str) -> None:
    status, headers, body = fetch(base_url + path)
    assert status == 200 and body
    etag = headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)  # strong validator
    status, headers304, body304 = fetch(base_url + path, {"If-None-Match": etag})
    assert status == 304
    assert body304 == b""
    assert headers304["ETag"] == etag
    status, _, body = fetch(base_url + path, {"If-None-Match": '"stale"'})
    assert status == 200 and body


@pytest.mark.parametrize("path", sorted(EXPECTED_FEEDS))
def test_conditional_get_on_last_modified(base_url: str, path: str) -> None:
    _, headers, _ = fetch(base_url + path)
    last_modified = headers["Last-Modified"]
    assert email.utils.parsedate_to_datetime(last_modified) == NOW
    status, _, body = fetch(base_url + path, {"If-Modified-Since": last_modified})
    assert status == 304 and body == b""
    earlier = email.utils.format_datetime(NOW - timedelta(hours=1), usegmt=True)
    status, _, body = fetch(base_url + path, {"If-Modified-Since": earlier})
    assert status == 200 and body
    # If-None-Match wins over If-Modified-Since when both are sent.
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert fetch(base_url + path, both)[0] == 200


# ------------------------------------------------------------------------------ pages


def test_windows_1251_page_relies_on_its_meta_tag(base_url: str, site: DemoSite) -> None:
    legacy = [a for a in site.articles if a.encoding != "utf-8"]
    assert [a.encoding for a in legacy] == ["windows-1251"]
    status, headers, body = fetch(base_url + legacy[0].served_path)
    assert status == 200
    assert headers["Content-Type"] == "text/html"
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    html = body.decode("cp1251")
    assert '<meta charset="windows-1251">' in html[:1024]
    assert "Северогорске" in html
    assert len(re.findall(r"[А-Яа-яЁё]", html)) > 1000


def test_utf8_pages_declare_charset_in_header(base_url: str, site: DemoSite) -> None:
    for art in site.articles:
        if art.encoding == "utf-8":
            _, headers, _ = fetch(base_url + art.served_path)
            assert headers["Content-Type"] == "text/html; charset=utf-8", art.slug


def test_one_page_is_served_off_its_canonical_url(base_url: str, site: DemoSite) -> None:
    moved = [a for a in site.articles if a.served_path != a.path]
    assert len(moved) == 1
    art = moved[0]
    assert art.served_path == art.path + "?ref=home"
    world_links = [e.link for e in parse_feed(base_url, "/world/rss.xml").entries]
    assert base_url + art.served_path in world_links
    _, _, body = fetch(base_url + art.served_path)
    canonical = re.search(r'<link rel="canonical" href="([^"]+)">', body.decode("utf-8"))
    assert canonical and canonical.group(1) == base_url + art.path


def test_article_pages_carry_metadata(base_url: str, site: DemoSite) -> None:
    for art in site.articles:
        _, _, body = fetch(base_url + art.served_path)
        html = body.decode("utf-8" if art.encoding == "utf-8" else "cp1251")
        assert re.search(rf'<html lang="{art.lang}">', html), art.slug
        for needle in (
            "<title>",
            '<meta name="description"',
            '<meta property="og:title"',
            '<meta property="og:image" content="' + base_url,
            '<meta property="og:site_name" content="The Meridian Ledger">',
            '<meta name="author"',
            '<meta property="article:tag"',
            '<link rel="canonical" href="' + base_url + art.path + '">',
        ):
            assert needle in html, (art.slug, needle)


def test_article_paths_cover_every_golden_file(base_url: str) -> None:
    paths = article_paths()
    assert len(paths) == 18 == len(set(paths))
    goldens = {json.loads(p.read_text("utf-8"))["path"] for p in GOLDEN_FILES}
    assert set(paths) == goldens
    for path in paths:
        status, headers, _ = fetch(base_url + path)
        assert status == 200 and headers["Content-Type"].startswith("text/html"), path


def test_write_feeds_file(base_url: str, tmp_path: Path) -> None:
    target = write_feeds_file(base_url, tmp_path / "conf" / "feeds.yaml")
    doc = yaml.safe_load(target.read_text("utf-8"))
    urls = {f["name"]: f["url"] for f in doc["feeds"]}
    assert set(urls.values()) == {base_url + p for p in EXPECTED_FEEDS}
    assert all(set(f) == {"name", "url"} for f in doc["feeds"])
    for url in urls.values():
        assert fetch(url)[0] == 200
    from ingest.config import load_feeds

    assert [f.url for f in load_feeds(target)] == [f["url"] for f in doc["feeds"]]
