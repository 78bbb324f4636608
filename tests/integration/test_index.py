"""The daily latest-news index: membership, dedup, renderings, late arrivals, determinism,
and the site around the day pages (day list, day links, feeds, paging), on both stores."""

from __future__ import annotations

import io
import json
import random
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pyarrow.parquet as pq
import pytest

from ingest import index
from ingest.lake import Lake
from ingest.store import LocalStore, Store
from tests.helpers.index import (
    CSP_META,
    DAY,
    VIEWPORT_META,
    D,
    Tags,
    article,
    assert_site_links_resolve,
    at,
    commit,
)


def read_index(store: Store, day: date = DAY) -> list[dict]:
    raw = store.get_bytes(f"index/date={day.isoformat()}/latest-news.parquet")
    return pq.read_table(io.BytesIO(raw)).to_pylist()


def test_membership_order_and_syndicated_copies(store: Store) -> None:
    syndicated = article(1, source="wire", published=at(9))
    copy = article(1, source="paper", text=syndicated["text"], published=at(10))
    near = article(
        1, source="blog", text=syndicated["text"].replace("Sentence 7", "Line 7"), published=at(11)
    )
    rows = [
        syndicated, copy, near,
        article(2, published=at(15)),
        article(3, published=None, fetched=at(12)),  # no date: its fetch day counts
        article(4, published=at(23, DAY - timedelta(1))),  # the day before: not in D
        article(5, published=at(0, DAY + timedelta(1))),  # the day after: not in D
    ]  # fmt: skip
    commit(store, "r1", rows, DAY)
    (result,) = index.build(store, [DAY])
    assert (result.stories, result.copies_merged) == (3, 2)
    got = read_index(store)
    assert [r["rank"] for r in got] == [1, 2, 3]
    assert [r["title"] for r in got] == ["Story 2", "Story 3", "Story 1"]
    assert got[1]["published_at_source"] == "fetched"
    merged = got[2]
    assert merged["source"] == "wire" and merged["other_sources"] == ["blog", "paper"]
    assert sorted(merged["other_article_ids"]) == sorted([copy["article_id"], near["article_id"]])
    assert all(len(r["summary"]) <= index.SUMMARY_CHARS for r in got)
    assert got[0]["summary"].startswith("Sentence 0 about the topic2")  # the lead, no title
    assert all(r["published_at"].tzinfo is not None for r in got)


def test_renderings_agree_and_parse(store: Store) -> None:
    commit(store, "r1", [article(n, published=at(8 + n)) for n in range(4)], DAY)
    index.build(store, [DAY])
    prefix = f"index/date={DAY.isoformat()}/"
    feed = json.loads(store.get_bytes(prefix + "latest-news.json"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert [i["title"] for i in feed["items"]] == ["Story 3", "Story 2", "Story 1", "Story 0"]
    assert feed["items"][0]["date_published"] == "2025-12-18T11:00:00Z"
    assert all({"id", "url", "content_text"} <= set(i) for i in feed["items"])
    atom = feedparser.parse(store.get_bytes(prefix + "latest-news.xml"))
    assert atom.bozo == 0 and atom.version == "atom10"
    assert [e.title for e in atom.entries] == [i["title"] for i in feed["items"]]
    assert [e.link for e in atom.entries] == [i["url"] for i in feed["items"]]
    page = store.get_bytes(prefix + "latest-news.html").decode()
    assert page.index("Story 3") < page.index("Story 0")
    assert 'href="https://wire.example/story/3"' in page


def test_hostile_values_are_escaped(store: Store) -> None:
    evil = article(
        1,
        title='<script>alert("x")</script> & <b>',
        published=at(9),
        summary="<img src=x onerror=alert(1)>",
    )
    evil["canonical_url"] = 'javascript:alert(1)//"><script>'
    commit(store, "r1", [evil], DAY)
    index.build(store, [DAY])
    page = store.get_bytes(f"index/date={DAY.isoformat()}/latest-news.html").decode()
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert 'href="javascript' not in page
    atom = feedparser.parse(store.get_bytes(f"index/date={DAY.isoformat()}/latest-news.xml"))
    assert atom.bozo == 0 and atom.entries[0].title == '<script>alert("x")</script> & <b>'


def test_empty_day_yields_valid_empty_files(store: Store) -> None:
    (result,) = index.build(store, [DAY])
    assert result.stories == 0
    assert read_index(store) == []
    prefix = f"index/date={DAY.isoformat()}/"
    assert json.loads(store.get_bytes(prefix + "latest-news.json"))["items"] == []
    atom = feedparser.parse(store.get_bytes(prefix + "latest-news.xml"))
    assert atom.bozo == 0 and atom.entries == []
    assert "No stories for this day" in store.get_bytes(prefix + "latest-news.html").decode()


def test_rebuild_is_deterministic(store: Store) -> None:
    commit(store, "r1", [article(n, published=at(8)) for n in range(5)], DAY)  # equal times
    index.build(store, [DAY])
    first = {k: store.get_bytes(k) for k in store.list("index/")}
    index.build(store, [DAY])
    assert {k: store.get_bytes(k) for k in store.list("index/")} == first
    assert len(first) == 4 + 2  # the day's four renderings, the manifest and the day list


def test_late_arrivals_and_default_days(store: Store) -> None:
    commit(store, "r1", [article(1, published=at(9))], DAY)
    days, _ = index.pending_days(store)
    assert days == [DAY]
    assert [r.stories for r in index.build(store)] == [1]
    # nothing new since the last build: today is the default
    assert index.pending_days(store, today=date(2030, 1, 1))[0] == [date(2030, 1, 1)]
    # published on DAY, ingested two days later: DAY is touched again and gains the story
    commit(store, "r2", [article(2, published=at(20))], DAY + timedelta(2))
    assert index.pending_days(store)[0] == [DAY]
    assert [r.stories for r in index.build(store)] == [2]
    # published a day ahead of its ingestion (allowed up to a day): still found
    commit(store, "r3", [article(3, published=at(1))], DAY - timedelta(1))
    index.build(store, [DAY])
    assert len(read_index(store)) == 3


def test_control_characters_never_make_the_atom_file_invalid(store: Store) -> None:
    """Rows stored before text was cleaned on the way in may still hold control chars."""
    row = article(1, published=at(9), title="Escape \x1b here", summary="bell \x07 and nul \x00")
    row["source"] = "wire\x0b"
    commit(store, "ctrl", [row], DAY)
    index.build(store, [DAY])
    atom = store.get_bytes(f"index/date={DAY.isoformat()}/latest-news.xml")
    ET.fromstring(atom)  # well-formed XML
    parsed = feedparser.parse(atom)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.entries[0].title == "Escape  here"
    html_page = store.get_bytes(f"index/date={DAY.isoformat()}/latest-news.html")
    assert b"\x1b" not in html_page and b"\x07" not in html_page


# ---------------------------------------------------------------------------- the site


def day_key(day: date, name: str = "latest-news.html") -> str:
    return f"index/date={day.isoformat()}/{name}"


def day_page(store: Store, day: date = DAY) -> str:
    return store.get_bytes(day_key(day)).decode()


def nav(page: str) -> tuple[str | None, str | None]:
    """(previous, next) day a day page links; header and footer must agree."""
    found = re.findall(r'<nav class="days".*?</nav>', page, re.S)
    assert len(found) == 2 and found[0] == found[1], found
    assert 'href="../index.html"' in found[0]
    links = [
        re.search(rf'rel="{rel}" href="\.\./date=([0-9-]+)/latest-news\.html"', found[0])
        for rel in ("prev", "next")
    ]
    return (links[0] and links[0][1], links[1] and links[1][1])


def test_day_list_counts_and_order(store: Store) -> None:
    older, middle = DAY - 2 * D, DAY - D
    rows = [article(1, published=at(9, older))]
    rows += [article(n, published=at(8 + n, DAY)) for n in (2, 3, 4)]
    commit(store, "r1", rows, DAY)
    commit(store, "r2", [article(n, published=at(n, middle)) for n in (5, 6)], DAY)
    index.build(store, [DAY, older])
    index.build(store, [middle])  # a day filled in between
    manifest = json.loads(store.get_bytes(index.MANIFEST))
    assert manifest == {
        "schema_version": 1,
        "days": {"2025-12-16": 1, "2025-12-17": 2, "2025-12-18": 3},
    }
    listed = re.compile(r'<li><a href="date=([0-9-]+)/latest-news\.html">.*?"count">([^<]*)<')
    home = store.get_bytes(index.HOME).decode()
    assert listed.findall(home) == [
        ("2025-12-18", "3 stories"), ("2025-12-17", "2 stories"), ("2025-12-16", "1 story"),
    ]  # fmt: skip
    assert "Thursday 18 December 2025" in home and "3 days, newest first" in home
    # a late arrival changes a count, in place
    commit(store, "r3", [article(7, published=at(20, older))], DAY + 2 * D)
    index.build(store)
    assert json.loads(store.get_bytes(index.MANIFEST))["days"]["2025-12-16"] == 2
    assert listed.findall(store.get_bytes(index.HOME).decode())[-1] == ("2025-12-16", "2 stories")


def test_empty_days_are_listed_with_no_stories(store: Store) -> None:
    index.build(store, [DAY])
    assert json.loads(store.get_bytes(index.MANIFEST))["days"] == {"2025-12-18": 0}
    assert '"count">0 stories<' in store.get_bytes(index.HOME).decode()


def test_day_links_follow_new_and_backfilled_days(store: Store) -> None:
    """A new day relinks its neighbours; a relinked page is byte for byte a rebuilt one."""
    days = [DAY - 3 * D, DAY - D, DAY, DAY + D]
    commit(store, "r1", [article(n, published=at(9, d)) for n, d in enumerate(days)], DAY)
    iso = {d: d.isoformat() for d in days}
    index.build(store, [DAY])
    assert nav(day_page(store, DAY)) == (None, None)
    index.build(store, [DAY + D])  # the next day arrives
    assert nav(day_page(store, DAY)) == (None, iso[DAY + D])
    assert nav(day_page(store, DAY + D)) == (iso[DAY], None)
    index.build(store, [DAY - 3 * D])  # an older day backfilled
    assert nav(day_page(store, DAY - 3 * D)) == (None, iso[DAY])
    assert nav(day_page(store, DAY)) == (iso[DAY - 3 * D], iso[DAY + D])
    assert nav(day_page(store, DAY + D)) == (iso[DAY], None)
    index.build(store, [DAY - D])  # a gap filled
    assert nav(day_page(store, DAY - 3 * D)) == (None, iso[DAY - D])
    assert nav(day_page(store, DAY - D)) == (iso[DAY - 3 * D], iso[DAY])
    assert nav(day_page(store, DAY)) == (iso[DAY - D], iso[DAY + D])
    assert assert_site_links_resolve(store) > 0
    relinked = {k: store.get_bytes(k) for k in store.list("index/")}
    index.build(store, days)  # every day rebuilt from its articles
    assert {k: store.get_bytes(k) for k in store.list("index/")} == relinked


class Recording:
    """A store that records what a build lists and reads."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.listed: list[str] = []
        self.read: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, prefix: str) -> Any:
        self.listed.append(prefix)
        return self.inner.list(prefix)

    def get_bytes(self, key: str) -> bytes | None:
        self.read.append(key)
        return self.inner.get_bytes(key)


def test_a_build_reads_the_manifest_and_neighbour_pages_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cost of a build does not grow with history: no listing, no other day's data,
    neighbours relinked in place rather than rebuilt."""
    days = [DAY - D, DAY, DAY + D, DAY + 2 * D]
    commit(store, "r1", [article(n, published=at(9, d)) for n, d in enumerate(days)], DAY)
    index.build(store, days[:3])
    built: list[date] = []
    build_day = index.build_day
    monkeypatch.setattr(
        index, "build_day", lambda s, d, nav=None: built.append(d) or build_day(s, d, nav)
    )
    for day, neighbours in ((days[3], [days[2]]), (days[1], [days[0], days[2]])):
        spy = Recording(store)
        built.clear()
        index.build(spy, [day])  # type: ignore[arg-type]
        assert built == [day]
        assert [p for p in spy.listed if p.startswith("index")] == []
        assert sorted(k for k in spy.read if k.startswith("index/")) == sorted(
            [index.MANIFEST, *(day_key(n) for n in neighbours)]
        )


def test_a_page_without_day_links_is_rebuilt(store: Store) -> None:
    """A neighbour written before pages had day links (or lost) cannot be relinked in
    place: it is rebuilt from its articles instead."""
    commit(store, "r1", [article(n, published=at(9, DAY + n * D)) for n in range(3)], DAY)
    index.build(store, [DAY, DAY + 2 * D])
    store.put_bytes(day_key(DAY), b"<!DOCTYPE html><html><body>old page</body></html>")
    store.delete(day_key(DAY + 2 * D))
    index.build(store, [DAY + D])
    assert nav(day_page(store, DAY)) == (None, (DAY + D).isoformat())
    assert nav(day_page(store, DAY + 2 * D)) == ((DAY + D).isoformat(), None)
    assert "Story 0" in day_page(store, DAY) and "Story 2" in day_page(store, DAY + 2 * D)
    assert_site_links_resolve(store)


def test_links_resolve_when_a_build_stops_halfway(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(store, "r1", [article(n, published=at(9, DAY + n * D)) for n in (-1, 0, 1)], DAY)
    index.build(store, [DAY - D])
    read_day = index.stories_of_day

    def failing(s: Store, day: date) -> Any:
        if day == DAY + D:
            raise OSError("store went away")
        return read_day(s, day)

    monkeypatch.setattr(index, "stories_of_day", failing)
    with pytest.raises(OSError):
        index.build(store, [DAY, DAY + D])
    assert nav(day_page(store, DAY)) == ((DAY - D).isoformat(), None)  # links what exists
    assert list(json.loads(store.get_bytes(index.MANIFEST))["days"]) == ["2025-12-17"]
    assert_site_links_resolve(store)
    monkeypatch.setattr(index, "stories_of_day", read_day)
    index.build(store, [DAY, DAY + D])  # the retry completes the site
    assert nav(day_page(store, DAY)) == ((DAY - D).isoformat(), (DAY + D).isoformat())
    assert nav(day_page(store, DAY - D)) == (None, DAY.isoformat())
    assert len(json.loads(store.get_bytes(index.MANIFEST))["days"]) == 3


def test_an_unreadable_manifest_restarts_the_day_list(store: Store) -> None:
    store.put_bytes(index.MANIFEST, b'{"days": {"not a day": 3}}')
    index.build(store, [DAY])
    assert json.loads(store.get_bytes(index.MANIFEST))["days"] == {"2025-12-18": 0}


def test_json_feed_is_valid_and_linked_from_the_page(store: Store) -> None:
    rich = article(1, published=at(9), summary="The port closes for a day.")
    rich.update(
        authors=["Ann Author", "Bob Writer"],
        tags=["strike", "ports"],
        categories=["Economy", "strike"],
        language="de",
        site_name="Hafenblatt",
    )
    plain = article(2, published=at(10))
    plain["language"] = None
    commit(store, "r1", [rich, plain], DAY)
    index.build(store, [DAY])
    raw = store.get_bytes(day_key(DAY, "latest-news.json"))
    feed = json.loads(raw)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == "Latest news — 2025-12-18" and feed["items"]
    for field, name in (("home_page_url", "latest-news.html"), ("feed_url", "latest-news.json")):
        assert feed[field] == name and store.exists(day_key(DAY, name))  # relative, resolves
    for item in feed["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert item["url"].startswith("https://") and item["title"]
        assert item.get("content_text") or item.get("summary")
        assert datetime.fromisoformat(item["date_published"]).tzinfo is not None
        assert item["authors"] and all(set(a) == {"name"} and a["name"] for a in item["authors"])
        assert all(not k.startswith("_") or k == "_newsflow" for k in item)  # extensions: "_"
    newest, older = feed["items"]
    assert older["authors"] == [{"name": "Ann Author"}, {"name": "Bob Writer"}]
    assert older["tags"] == ["strike", "ports", "Economy"]
    assert older["language"] == "de" and older["summary"] == "The port closes for a day."
    assert older["_newsflow"]["site_name"] == "Hafenblatt"
    assert newest["authors"] == [{"name": "wire"}]  # no authors, no site name: the feed's name
    assert "language" not in newest and "tags" not in newest
    assert newest["content_text"].startswith("Sentence 0 about the topic2")
    page = day_page(store)
    alternates = [
        (a.get("type"), a.get("href"))
        for tag, a in Tags(page).tags
        if tag == "link" and a.get("rel") == "alternate"
    ]
    assert alternates == [
        ("application/atom+xml", "latest-news.xml"),
        ("application/feed+json", "latest-news.json"),
    ]


def test_language_and_site_name_shown_per_story_and_escaped(store: Store) -> None:
    hostile = article(1, published=at(9), title='"><script>alert(1)</script>')
    hostile.update(site_name='<script>alert("site")</script> & "Co"', language='en" onclick="x')
    austrian = article(2, published=at(10))
    austrian.update(site_name="Der Standard", language="de_AT")
    unknown = article(3, published=at(11))
    unknown.update(site_name=None, language=None)
    commit(store, "r1", [hostile, austrian, unknown], DAY)
    index.build(store, [DAY])
    page = day_page(store)
    assert "<script" not in page and "onclick" not in page
    assert "&lt;script&gt;alert(&quot;site&quot;)&lt;/script&gt; &amp; &quot;Co&quot;" in page
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parsed = Tags(page)
    langs = [a.get("lang") for tag, a in parsed.tags if tag == "li"]
    assert langs == ["", "de-AT", ""]  # newest first; unknown and invalid tags are ""
    assert parsed.sites == ["wire", "Der Standard", '<script>alert("site")</script> & "Co"']
    atom = ET.fromstring(store.get_bytes(day_key(DAY, "latest-news.xml")))
    atom_langs = [e.get(index.XML_LANG) for e in atom.iter(f"{{{index.ATOM}}}entry")]
    assert atom_langs == [None, "de-AT", None]


def test_pages_are_self_contained_and_script_free(store: Store) -> None:
    commit(store, "r1", [article(n, published=at(9, DAY + n * D)) for n in range(2)], DAY)
    index.build(store, [DAY, DAY + D])
    pages = [k for k in store.list("index/") if k.endswith(".html")]
    assert sorted(pages) == sorted([index.HOME, day_key(DAY), day_key(DAY + D)])
    for key in pages:
        page = store.get_bytes(key).decode()
        assert "<script" not in page.lower() and "javascript:" not in page.lower()
        assert CSP_META in page and VIEWPORT_META in page
        assert page.index(CSP_META) < page.index("<title>")  # in force before any content
        for tag, attrs in Tags(page).tags:
            assert "src" not in attrs and not any(k.startswith("on") for k in attrs), (tag, attrs)
            if tag == "link":
                assert attrs.get("rel") == "alternate" and not urlsplit(attrs["href"]).scheme
    assert assert_site_links_resolve(store) >= 3 * 2 + 2


def test_site_bytes_do_not_depend_on_build_history(store: Store, tmp_path: Path) -> None:
    """Days built one by one, out of order (relinking neighbours each time), give the very
    bytes of one build of all days at once, on another store."""
    days = [DAY + n * D for n in range(-2, 3)]
    rows = [article(n, published=at(9, d)) for n, d in enumerate(days)]
    other = LocalStore(tmp_path / "other")
    for target in (store, other):
        commit(target, "r1", rows, DAY)
    for day in (days[2], days[4], days[0], days[3], days[1]):
        index.build(store, [day])
    index.build(other, days)
    site = {k: store.get_bytes(k) for k in store.list("index/")}
    assert site == {k: other.get_bytes(k) for k in other.list("index/")}
    assert len(site) == 5 * 4 + 2


# ---------------------------------------------------------------------------- a big day


def big_day(count: int) -> list[dict]:
    """`count` distinct stories on DAY, one a minute from midnight (newest is the last)."""
    rows = []
    for n in range(count):
        words = random.Random(n).choices(range(10**6), k=120)  # no two are near duplicates
        text = f"Story {n}\n" + " ".join(f"w{w}" for w in words)
        rows.append(article(n, text=text, published=at(0) + timedelta(minutes=n)))
    return rows


def page_key(day: date, number: int) -> str:
    return day_key(day, "latest-news.html" if number == 1 else f"latest-news-{number}.html")


def story_links(page: str) -> list[str]:
    return re.findall(r'<li lang="[^"]*"><a href="([^"]+)"', page)


def pager(page: str) -> tuple[str | None, str | None]:
    """(newer, older) page a day page links in its page navigation; both copies agree."""
    found = re.findall(r'<nav class="pages".*?</nav>', page, re.S)
    assert len(found) == 2 and found[0] == found[1], found
    links = [re.search(rf'rel="{rel}" href="([^"]+)"', found[0]) for rel in ("prev", "next")]
    return (links[0] and links[0][1], links[1] and links[1][1])


def test_a_big_day_is_paged_and_its_feeds_bounded(store: Store) -> None:
    """A day of more than PAGE_STORIES stories: the day page shows the newest PAGE_STORIES
    and links further pages, each bounded; the feeds hold the newest FEED_ITEMS; the
    Parquet file holds every story. A later build with fewer pages drops the extra ones."""
    size = index.PAGE_STORIES
    count = 2 * size + 201
    rows = big_day(count)
    commit(store, "r1", rows, DAY)
    (result,) = index.build(store, [DAY])
    assert result.stories == count
    everything = read_index(store)
    assert len(everything) == count and [r["rank"] for r in everything] == list(range(1, count + 1))
    urls = [r["url"] for r in everything]
    assert urls[0] == rows[-1]["url"]  # newest first

    pages = [day_page(store)] + [store.get_bytes(page_key(DAY, n)).decode() for n in (2, 3)]
    assert not store.exists(page_key(DAY, 4))
    assert [len(story_links(p)) for p in pages] == [size, size, 201]
    assert [u for p in pages for u in story_links(p)] == urls  # every story, once, in order
    assert pager(pages[0]) == (None, "latest-news-2.html")
    assert pager(pages[1]) == ("latest-news.html", "latest-news-3.html")
    assert pager(pages[2]) == ("latest-news-2.html", None)
    assert nav(pages[0]) == (None, None)  # the day links stay on the day's first page
    assert f"{count} stories" in pages[0] and "Page 2 of 3" in pages[1]
    for page in pages:
        assert CSP_META in page and "<script" not in page
    assert set(result.keys) == {day_key(DAY, n) for n in index.NAMES} | {
        page_key(DAY, 2),
        page_key(DAY, 3),
    }

    feed = json.loads(store.get_bytes(day_key(DAY, "latest-news.json")))
    feed_items = index.FEED_ITEMS
    assert feed["description"].startswith(f"The newest {feed_items} of the {count} stories")
    assert [i["id"] for i in feed["items"]] == [r["article_id"] for r in everything[:feed_items]]
    atom = ET.fromstring(store.get_bytes(day_key(DAY, "latest-news.xml")))
    entries = atom.findall(f"{{{index.ATOM}}}entry")
    assert [e.find(f"{{{index.ATOM}}}link").get("href") for e in entries] == urls[:feed_items]
    assert json.loads(store.get_bytes(index.MANIFEST))["days"] == {DAY.isoformat(): count}
    assert assert_site_links_resolve(store) > 0

    # the day shrinks (stories moved away, say): the pages beyond its last one go
    keep = {r["article_id"] for r in rows[: size - 1]}
    gone = ", ".join(f"'{r['article_id']}'" for r in rows if r["article_id"] not in keep)
    Lake(store).articles().delete(f"article_id IN ({gone})")
    index.build(store, [DAY])
    assert not store.exists(page_key(DAY, 2)) and not store.exists(page_key(DAY, 3))
    assert "pages" not in day_page(store) and len(story_links(day_page(store))) == size - 1
    assert assert_site_links_resolve(store) > 0


def test_a_day_of_page_stories_has_one_page_as_before(store: Store) -> None:
    """Up to PAGE_STORIES stories: one page with no page navigation, feeds with them all."""
    commit(store, "r1", big_day(index.PAGE_STORIES), DAY)
    index.build(store, [DAY])
    page = day_page(store)
    assert len(story_links(page)) == index.PAGE_STORIES and 'class="pages"' not in page
    assert not store.exists(page_key(DAY, 2))
    feed = json.loads(store.get_bytes(day_key(DAY, "latest-news.json")))
    assert len(feed["items"]) == index.PAGE_STORIES
    assert feed["description"] == "Stories published on this day (UTC), newest first."
