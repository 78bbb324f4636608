"""The daily latest-news index: membership, dedup, renderings, late arrivals, determinism."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import feedparser
import pyarrow.parquet as pq
import pytest

from ingest import ids, index, schema
from ingest.extract import fingerprints
from ingest.lake import CommitRequest, Lake, PartWriter
from ingest.report import RunReport
from ingest.store import Store

pytestmark = pytest.mark.integration

DAY = date(2025, 12, 18)
BODY = " ".join(f"Sentence {i} about the harbour strike and the wage talks." for i in range(60))


def article(
    n: int,
    *,
    source: str = "wire",
    text: str | None = None,
    title: str | None = None,
    published: datetime | None = None,
    fetched: datetime | None = None,
    summary: str | None = None,
) -> dict:
    url = f"https://{source}.example/story/{n}"
    text = text if text is not None else f"Story {n}\n" + BODY.replace("harbour", f"topic{n}")
    sha, sim = fingerprints(text)
    return {
        "article_id": ids.article_id(url), "url": url, "final_url": url, "canonical_url": url,
        "source": source, "feed_url": f"https://{source}.example/feed", "authors": [],
        "title": title or f"Story {n}", "published_at": published,
        "published_at_source": "page" if published else None, "updated_at": None,
        "fetched_at": fetched or datetime(2025, 12, 18, 23, 0, tzinfo=UTC),
        "language": "en", "site_name": None, "summary": summary, "text": text,
        "word_count": len(text.split()), "categories": [], "tags": [], "image_url": None,
        "content_sha256": sha, "simhash": sim, "http_status": 200, "run_id": "r",
        "schema_version": 1,
    }  # fmt: skip


def commit(store: Store, run_id: str, rows: list[dict], ingest_day: date) -> None:
    key = ids.run_key(run_id)
    writer = PartWriter(store, schema.article(), "articles", key, ingest_day.isoformat(), 100)
    for row in rows:
        writer.add(row)
    from ingest.normalize import index_date

    Lake(store).commit(CommitRequest(
        run_id=run_id, run_key=key, parts=writer.close(),
        article_ids=[r["article_id"] for r in rows], feed_states={},
        report=RunReport(run_id, store.uri, f"{ingest_day}T00:00:00+00:00").to_dict(),
        index_dates=sorted({index_date(r).isoformat() for r in rows}),
    ))  # fmt: skip


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


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


def test_summary_prefers_the_articles_summary_and_is_shortened() -> None:
    assert index.shorten("x " * 400).endswith("…")
    assert len(index.shorten("word " * 400)) <= index.SUMMARY_CHARS
    assert index.shorten("short one") == "short one"


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
    assert len(first) == 4


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
