"""Articles corrected after publication: refetched when their source says they changed,
updated in place (one row per article), unchanged bodies cost no write; and every feed
that linked an article is recorded, with a deterministic primary source."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from deltalake import DeltaTable
from fixture_server import FixtureServer, Route, article_html, paragraphs, rss, send_html

from ingest.config import Feed, Settings
from ingest.lake import read_committed
from ingest.lake.keys import KeyIndex
from ingest.pipeline import run
from ingest.store import Store

pytestmark = pytest.mark.integration


def settings() -> Settings:
    return Settings.from_env({}, allow_networks=["127.0.0.0/8"], http_retries=0, workers=1,
                             progress=False, poll_min_interval=0.0)  # fmt: skip


def rfc822(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def merges(store: Store) -> list[dict]:
    table = DeltaTable(store.table_uri("articles"), storage_options=store.storage_options())
    return [h for h in table.history() if h.get("operation") == "MERGE"]


def test_a_changed_article_is_updated_in_place(store: Store) -> None:
    body = {"text": paragraphs(501)}
    page = {"updated": datetime.now(UTC) - timedelta(hours=2)}

    def feed(req: BaseHTTPRequestHandler) -> None:
        item = {
            "title": "Corrected",
            "link": srv.url("/story"),
            "pubDate": rfc822(datetime.now(UTC) - timedelta(days=1)),
            "atom:updated": page["updated"].isoformat(),
        }
        xml = rss([item]).replace(
            b"<rss version", b'<rss xmlns:atom="http://www.w3.org/2005/Atom" version'
        )
        send_html(req, xml, "application/rss+xml")

    with FixtureServer().running() as srv:
        srv.add(
            "/story", lambda req: send_html(req, article_html("Corrected", body["text"]).encode())
        )
        srv.add("/f.xml", feed)
        feeds = [Feed("wire", srv.url("/f.xml"))]
        first = run(store, feeds, settings())
        # the publisher corrects the story and says so in the feed
        time.sleep(0.05)
        body["text"] = paragraphs(502)
        page["updated"] = datetime.now(UTC) + timedelta(seconds=1)
        time.sleep(1.1)
        second = run(store, feeds, settings())
        # the feed bumps the date again but the body is the same: no write
        page["updated"] = datetime.now(UTC) + timedelta(seconds=1)
        time.sleep(1.1)
        third = run(store, feeds, settings())
        fourth = run(store, feeds, settings())  # nothing changed at all: not even fetched
        fetches = srv.hits["/story"]
    rows = read_committed(store).to_pylist()
    assert len(rows) == 1  # one row per article, always
    row = rows[0]
    assert (first.articles_written, second.articles_written, second.articles_updated) == (1, 0, 1)
    assert row["revision"] == 2 and row["revised_at"] is not None
    assert paragraphs(502)[0][:40] in row["text"] and row["run_id"] == second.run_id
    assert row["sources"] == ["wire"] and row["source"] == "wire"
    assert second.dates_touched == first.dates_touched  # the index of its day is rebuilt
    assert third.articles_updated == 0 and third.skips["unchanged"] == 1
    assert fourth.skips["already_seen"] == 1 and fetches == 3
    assert len(merges(store)) == 1  # the unchanged body cost no table write
    # the key markers carry the new body's hash, so the third run could tell it was the same
    marker = KeyIndex(store).read(row["article_id"])
    assert marker is not None and marker.content_sha256 == row["content_sha256"]
    # catching up on the log skips the update's rewritten files (whole files of old rows)
    keys = KeyIndex(store)
    keys.advance(merges(store)[0]["version"] - 1)
    writes = []
    real_put = store.put_bytes
    store.put_bytes = lambda key, *a, **kw: writes.append(key) or real_put(key, *a, **kw)
    keys.roll_forward(DeltaTable(store.table_uri("articles"),
                                 storage_options=store.storage_options()).version())  # fmt: skip
    assert [w for w in writes if w.startswith("_keys/")] == []


def test_every_feed_that_linked_an_article_is_recorded(store: Store) -> None:
    with FixtureServer().running() as srv:
        srv.add("/shared", Route(article_html("Shared story", paragraphs(777)).encode()))
        srv.add("/own", Route(article_html("Own story", paragraphs(778)).encode()))

        def slow_feed(req: BaseHTTPRequestHandler) -> None:
            time.sleep(0.5)  # "alpha" answers last: its poll finishes after "zulu"'s
            items = [{"title": "s", "link": srv.url("/shared")}]
            send_html(req, rss(items), "application/rss+xml")

        srv.add("/alpha.xml", slow_feed)
        srv.add("/zulu.xml", Route(rss([{"title": "s", "link": srv.url("/shared")},
                                        {"title": "o", "link": srv.url("/own")}]),
                                   content_type="application/rss+xml"))  # fmt: skip
        feeds = [Feed("zulu", srv.url("/zulu.xml")), Feed("alpha", srv.url("/alpha.xml"))]
        report = run(store, feeds, settings())
    rows = {r["title"]: r for r in read_committed(store).to_pylist()}
    assert report.articles_written == 2 and report.skips["duplicate_in_run"] == 1
    shared = rows["Shared story"]
    assert shared["sources"] == ["alpha", "zulu"]
    assert shared["source"] == "alpha" and shared["feed_url"].endswith("/alpha.xml")
    assert rows["Own story"]["sources"] == ["zulu"] and rows["Own story"]["source"] == "zulu"
