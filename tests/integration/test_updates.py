"""Articles corrected after publication: refetched when their source says they changed,
updated in place (one row per article), unchanged bodies cost no write; and every feed
that linked an article is recorded, with a deterministic primary source."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler

from deltalake import DeltaTable

from ingest.config import Feed, Settings
from ingest.lake import read_committed
from ingest.lake.keys import KeyIndex
from ingest.run import run
from ingest.state import load_feed_states
from ingest.store import LocalStore, Store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss, send_html


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


class _Publisher:
    """A site whose feed lists `count` stories, each with an `updated` date the test
    moves; bodies change only when told."""

    def __init__(self, srv: FixtureServer, count: int) -> None:
        self.srv = srv
        self.updated: dict[int, datetime] = {
            i: datetime.now(UTC) - timedelta(hours=2) for i in range(count)
        }
        self.seeds: dict[int, int] = {i: 900 + i for i in range(count)}
        for i in range(count):
            srv.add(f"/s{i}", self._page(i))
        srv.add("/f.xml", self._feed)

    def _page(self, i: int):
        def handler(req: BaseHTTPRequestHandler) -> None:
            send_html(req, article_html(f"Story {i}", paragraphs(self.seeds[i])).encode())

        return handler

    def _feed(self, req: BaseHTTPRequestHandler) -> None:
        items = [
            {
                "title": f"Story {i}",
                "link": self.srv.url(f"/s{i}"),
                "pubDate": rfc822(datetime.now(UTC) - timedelta(days=1)),
                "atom:updated": when.isoformat(),
            }
            for i, when in self.updated.items()
        ]
        xml = rss(items).replace(
            b"<rss version", b'<rss xmlns:atom="http://www.w3.org/2005/Atom" version'
        )
        send_html(req, xml, "application/rss+xml")

    def bump(self, when: datetime | None = None) -> None:
        """Every story says it changed (a moment ago, unless told when). Feed dates have
        whole seconds: the date is a second ahead and the bump waits it out, so it is
        newer than the check before it and older than the check after it."""
        if when is not None:
            for i in self.updated:
                self.updated[i] = when
            return
        when = datetime.now(UTC) + timedelta(seconds=1)
        for i in self.updated:
            self.updated[i] = when
        time.sleep(1.1)

    def page_hits(self) -> int:
        return sum(n for path, n in self.srv.hits.items() if path.startswith("/s"))


def raw_files(store: Store) -> list[str]:
    return sorted(store.list("raw/"))


def test_far_future_dates_do_not_force_rechecks(tmp_path) -> None:
    """A year-9999 `updated` is beyond the future tolerance: ignored for update checks,
    as recency() ignores it for ordering. Fetching it every run would never end."""
    store = LocalStore(tmp_path / "store")
    with FixtureServer().running() as srv:
        site = _Publisher(srv, 2)
        feeds = [Feed("wire", srv.url("/f.xml"))]
        first = run(store, feeds, settings())
        archived = raw_files(store)
        site.bump(datetime(9999, 12, 31, tzinfo=UTC))
        reports = [run(store, feeds, settings()) for _ in range(3)]
        hits = site.page_hits()
    assert first.articles_written == 2 and hits == 2  # each page fetched once, ever
    assert [r.pages_fetched for r in reports] == [0, 0, 0]
    assert all(r.skips["already_seen"] == 2 for r in reports)
    assert raw_files(store) == archived


def test_an_unchanged_recheck_archives_nothing(tmp_path) -> None:
    """A recheck that finds the same body writes no WARC record: nothing under raw/ that
    no row points to."""
    store = LocalStore(tmp_path / "store")
    with FixtureServer().running() as srv:
        site = _Publisher(srv, 2)
        feeds = [Feed("wire", srv.url("/f.xml"))]
        run(store, feeds, settings())
        archived = raw_files(store)
        site.bump()
        second = run(store, feeds, settings())
    assert second.pages_fetched == 2 and second.skips["unchanged"] == 2
    assert raw_files(store) == archived
    pointed = {r["warc_file"] for r in read_committed(store).to_pylist()}
    assert pointed == set(archived)  # every WARC file under raw/ is some row's


def test_rechecks_are_capped_per_source_and_the_backlog_continues(tmp_path) -> None:
    """INGEST_MAX_RECHECKS bounds a run's rechecks of one source; the rest are counted
    (`recheck_deferred`) and done by the next runs, oldest change first, none lost."""
    store = LocalStore(tmp_path / "store")
    capped = settings().with_(max_rechecks=2)
    with FixtureServer().running() as srv:
        site = _Publisher(srv, 5)
        feeds = [Feed("wire", srv.url("/f.xml"))]
        run(store, feeds, capped)
        site.bump()  # five corrections, all with new bodies
        for i in site.seeds:
            site.seeds[i] += 50
        reports = [run(store, feeds, capped) for _ in range(4)]
        state = load_feed_states(store)["wire"]
    assert [r.articles_updated for r in reports] == [2, 2, 1, 0]
    assert [r.skips["recheck_deferred"] for r in reports] == [3, 1, 0, 0]
    assert reports[3].skips["already_seen"] == 5  # the backlog is through: checked_at moved
    assert state.recheck_cursor is None
    rows = read_committed(store).to_pylist()
    assert len(rows) == 5 and all(r["revision"] == 2 for r in rows)


def test_a_source_whose_dates_move_without_its_pages_is_rechecked_less_often(
    tmp_path,
) -> None:
    store = LocalStore(tmp_path / "store")
    with FixtureServer().running() as srv:
        site = _Publisher(srv, 2)
        feeds = [Feed("wire", srv.url("/f.xml"))]
        run(store, feeds, settings())
        reports = []
        for _ in range(3):  # every poll, a new date; never a new body
            site.bump()
            reports.append(run(store, feeds, settings()))
        state = load_feed_states(store)["wire"]
        status = subprocess.run(
            [sys.executable, "-m", "ingest.cli", "status", "--store", str(store.root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert [r.pages_fetched for r in reports] == [2, 2, 0]
    assert [r.skips["unchanged"] for r in reports] == [2, 2, 0]
    assert reports[2].skips["recheck_deferred"] == 2
    assert state.recheck_misses == 2 and state.recheck_after is not None
    assert datetime.fromisoformat(state.recheck_after) > datetime.now(UTC) + timedelta(minutes=50)
    assert status.returncode == 0, status.stderr
    assert "rechecks paused" in status.stdout
