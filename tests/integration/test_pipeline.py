"""End-to-end runs on real HTTP servers and real stores (local disk and SeaweedFS S3)."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler

import pyarrow as pa
import pytest

from ingest import ids
from ingest.config import Feed, Settings
from ingest.lake import read_committed, report_key
from ingest.run import run
from ingest.state import load_feed_states
from ingest.store import LocalStore, Store
from newsflow_dev.loopback import (
    FixtureServer,
    Route,
    article_html,
    paragraphs,
    rss,
    send_html,
    slow_page,
    trickle_headers,
)

RUSSIAN = [
    "Переговоры в Москве продолжались почти шесть часов и завершились совместным заявлением.",
    "Министры договорились вернуться к обсуждению ядерной программы в начале следующего года.",
    "Эксперты считают, что новый формат консультаций может заменить прежние механизмы диалога.",
]


def settings(**kw: object) -> Settings:
    base = {
        "allow_networks": ["127.0.0.0/8"],
        "http_retries": 0,
        "total_timeout": 3.0,
        "read_timeout": 2.0,
        "workers": 2,
        "per_host_concurrency": 8,
        "progress": False,
        "poll_min_interval": 0.0,  # poll on every run (adaptive polling has its own tests)
    }
    base.update(kw)
    return Settings.from_env({}, **base)


def slow(req: BaseHTTPRequestHandler) -> None:
    time.sleep(5)


class Publisher:
    """A site with good pages and every kind of bad input a real publisher produces."""

    def __init__(self, srv: FixtureServer) -> None:
        self.srv = srv
        self.good: list[str] = []
        items = []
        for i in range(6):
            path = f"/world/story-{i}"
            html = article_html(
                f"World story {i}", paragraphs(100 + i), published=f"2025-12-1{i}T09:30:00+00:00"
            )
            srv.add(path, Route(html.encode()))
            self.good.append(path)
            items.append(
                {
                    "title": f"World story {i}",
                    "link": srv.url(path),
                    "pubDate": f"Thu, 1{i} Dec 2025 09:30:00 GMT",
                }
            )
        # a redirect chain ending on a real article
        srv.add("/r/1", Route(status=301, headers={"Location": "/r/2"}))
        srv.add("/r/2", Route(status=302, headers={"Location": "/world/moved"}))
        srv.add("/world/moved", Route(article_html("Moved story", paragraphs(7)).encode()))
        self.good.append("/world/moved")
        # a windows-1251 page declared only in its meta tag
        srv.add(
            "/ru/story",
            Route(
                article_html("Новости дня", RUSSIAN * 3, lang="ru", charset="windows-1251").encode(
                    "cp1251"
                ),
                content_type="text/html",
            ),
        )
        self.good.append("/ru/story")
        bad = {
            "/gone": Route(b"gone", status=404),
            "/broken": Route(b"oops", status=500),
            "/huge": Route(b"<p>" + b"x" * 300_000),
            "/bomb": Route(
                gzip.compress(b"<p>" + b"y" * 3_000_000), headers={"Content-Encoding": "gzip"}
            ),
            "/pdf": Route(b"%PDF-1.4", content_type="application/pdf"),
            "/empty": Route(b"<html><body><nav>Home</nav></body></html>"),
        }
        for path, route in bad.items():
            srv.add(path, route)
        srv.add("/slow", slow)
        extra = [*bad, "/slow", "/r/1", "/ru/story"]
        items += [{"title": p, "link": srv.url(p)} for p in extra]
        items.append({"title": "metadata", "link": "http://169.254.169.254/latest/meta-data/"})
        items.append({"title": "no link at all"})
        srv.add(
            "/feeds/world.xml",
            Route(rss(items), content_type="application/rss+xml", conditional=True),
        )
        # second feed (Atom) repeats two world stories, one with tracking parameters
        atom = (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>Top</title><id>urn:top</id><updated>2025-12-18T00:00:00Z</updated>"
            f'<entry><title>a</title><id>urn:a</id><link href="{srv.url("/world/story-0")}'
            '?utm_source=atom&amp;utm_medium=feed"/><updated>2025-12-10T09:30:00Z</updated></entry>'
            '<entry><title>b</title><id>urn:b</id><link href="/world/story-1#comments"/>'
            "<updated>2025-12-11T09:30:00Z</updated></entry></feed>"
        ).encode()
        srv.add(
            "/feeds/top.atom", Route(atom, content_type="application/atom+xml", conditional=True)
        )
        srv.add("/feeds/broken.xml", Route(b"<rss><channel><title>x</ti", content_type="text/xml"))
        srv.add("/feeds/down.xml", Route(b"", status=503))
        self.feeds = [
            Feed("world", srv.url("/feeds/world.xml")),
            Feed("top", srv.url("/feeds/top.atom")),
            Feed("broken", srv.url("/feeds/broken.xml")),
            Feed("down", srv.url("/feeds/down.xml")),
        ]


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    with FixtureServer().running() as srv:
        yield Publisher(srv)


def test_full_run_with_every_kind_of_bad_input(store: Store, publisher: Publisher) -> None:
    report = run(store, publisher.feeds, settings(max_bytes=200_000))
    articles = read_committed(store)
    rejects = read_committed(store, "rejects")

    # the good pages are committed once each, whatever feed linked them
    assert articles.num_rows == len(publisher.good) == report.articles_written
    assert sorted(articles["canonical_url"].to_pylist()) == sorted(
        publisher.srv.url(p) for p in publisher.good
    )
    assert len(set(articles["article_id"].to_pylist())) == articles.num_rows
    by_url = {r["canonical_url"]: r for r in articles.to_pylist()}
    ru = by_url[publisher.srv.url("/ru/story")]
    assert RUSSIAN[0] in ru["text"] and ru["language"] == "ru"
    moved = by_url[publisher.srv.url("/world/moved")]
    assert moved["url"] == publisher.srv.url("/r/1")
    story0 = by_url[publisher.srv.url("/world/story-0")]
    assert story0["published_at_source"] == "page"
    assert story0["published_at"].isoformat() == "2025-12-10T09:30:00+00:00"
    assert "Latest news" not in story0["text"] and "All rights reserved" not in story0["text"]
    assert publisher.srv.hits["/world/story-0"] == 1  # linked by two feeds, fetched once

    # every failure is a reject with its stage and reason
    reasons = {(r["stage"], r["reason"]) for r in rejects.to_pylist()}
    assert reasons == {
        ("fetch", "http_404"), ("fetch", "http_500"), ("fetch", "too_large"),
        ("fetch", "bad_content_type"), ("fetch", "timeout"), ("fetch", "blocked_address"),
        ("extract", "too_short"), ("feed", "feed_parse_error"), ("feed", "http_503"),
    }  # fmt: skip
    assert report.rejects["too_large"] == 2  # declared size and gzip bomb
    assert report.failed_feeds == {"broken": "feed_parse_error", "down": "http_503 (503)"}

    # nothing lost silently: every entry is an article, a reject or a counted skip
    entry_outcomes = report.articles_written + report.entry_rejects() + sum(report.skips.values())
    assert report.entries_seen == entry_outcomes
    assert report.skips == {"no_link": 1, "duplicate_in_run": 2}

    # the same report is in the store as JSON
    stored = json.loads(store.get_bytes(report_key(ids.run_key(report.run_id), report.to_dict())))
    assert stored["articles_written"] == report.articles_written


def test_second_run_uses_conditional_get(store: Store) -> None:
    with FixtureServer().running() as srv:
        items = []
        for i in range(3):
            srv.add(f"/a/{i}", Route(article_html(f"A{i}", paragraphs(i)).encode()))
            items.append({"title": f"A{i}", "link": srv.url(f"/a/{i}")})
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml", conditional=True))
        feeds = [Feed("f", srv.url("/f.xml"))]
        first = run(store, feeds, settings())
        page_hits = sum(n for p, n in srv.hits.items() if p.startswith("/a/"))
        second = run(store, feeds, settings())
        assert (first.articles_written, first.feeds_polled) == (3, 1)
        assert (second.feeds_not_modified, second.entries_seen, second.articles_written) == (
            1,
            0,
            0,
        )
        assert srv.hits["/f.xml"] == 2
        assert sum(n for p, n in srv.hits.items() if p.startswith("/a/")) == page_hits
        # new content: the feed changes, only the new article is fetched
        srv.add("/a/9", Route(article_html("A9", paragraphs(9)).encode()))
        items.append({"title": "A9", "link": srv.url("/a/9")})
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml", conditional=True))
        third = run(store, feeds, settings())
        assert third.articles_written == 1 and third.skips["already_seen"] == 3
        assert srv.hits["/a/0"] == 1
    assert read_committed(store).num_rows == 4


def test_transient_failures_are_retried_next_run(store: Store) -> None:
    with FixtureServer().running() as srv:
        srv.add("/ok", Route(article_html("Ok", paragraphs(1)).encode()))
        srv.add("/flaky", Route(b"", status=503))
        items = [{"title": "ok", "link": srv.url("/ok")}, {"title": "f", "link": srv.url("/flaky")}]
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml", conditional=True))
        feeds = [Feed("f", srv.url("/f.xml"))]
        first = run(store, feeds, settings())
        assert first.articles_written == 1 and first.rejects["http_503"] == 1
        srv.add("/flaky", Route(article_html("Flaky", paragraphs(2)).encode()))
        second = run(store, feeds, settings())  # validators were not saved: full feed again
        assert second.feeds_polled == 1 and second.articles_written == 1
    assert read_committed(store).num_rows == 2


def test_a_transient_failure_keeps_every_source_that_listed_it_due(tmp_path) -> None:
    """Adaptive polling would leave both sources for 10 minutes; the page that failed
    transiently keeps them due (and their validators unsaved), so the very next run sees
    its entry again in either feed, and nothing else is refetched."""
    store = LocalStore(tmp_path / "store")
    polite = settings(poll_min_interval=600.0)
    with FixtureServer().running() as srv:
        srv.add("/ok", Route(article_html("Ok", paragraphs(1)).encode()))
        srv.add("/flaky", Route(b"", status=503))
        srv.add("/quiet", Route(article_html("Quiet", paragraphs(3)).encode()))
        one = [{"title": "ok", "link": srv.url("/ok")}, {"title": "f", "link": srv.url("/flaky")}]
        two = [{"title": "f", "link": srv.url("/flaky")}]
        three = [{"title": "q", "link": srv.url("/quiet")}]
        for name, items in (("one", one), ("two", two), ("three", three)):
            srv.add(f"/{name}.xml", Route(rss(items), content_type="application/rss+xml",
                                          conditional=True))  # fmt: skip
        feeds = [Feed(n, srv.url(f"/{n}.xml")) for n in ("one", "two", "three")]
        first = run(store, feeds, polite)
        srv.add("/flaky", Route(article_html("Flaky", paragraphs(2)).encode()))
        second = run(store, feeds, polite)
        states = load_feed_states(store)
        hits = dict(srv.hits)
    assert first.articles_written == 2 and first.rejects["http_503"] == 1
    assert (second.feeds_polled, second.feeds_not_due, second.articles_written) == (2, 1, 1)
    assert hits["/ok"] == 1 and hits["/quiet"] == 1 and hits["/three.xml"] == 1
    assert all(states[n].etag is not None for n in ("one", "two", "three"))  # now complete
    assert read_committed(store).num_rows == 3


def test_a_page_that_overruns_extraction_costs_no_other_sources_articles(tmp_path) -> None:
    """One worker, a 1 s extraction timeout, a hostile page that takes seconds to
    extract and an innocent feed's pages queued behind it: only the hostile page is
    rejected; the innocent articles are committed in that same run, never lost."""
    store = LocalStore(tmp_path / "store")
    tight = settings(workers=1, extract_timeout=1.0, total_timeout=20.0, read_timeout=20.0,
                     max_bytes=32 * 2**20)  # fmt: skip
    heavy = article_html("Heavy", paragraphs(4000, count=15000)).encode()
    with FixtureServer().running() as hostile, FixtureServer("127.0.0.2").running() as innocent:
        hostile.add("/heavy", Route(heavy))
        hostile.add("/h.xml", Route(rss([{"title": "h", "link": hostile.url("/heavy")}]),
                                    content_type="application/rss+xml"))  # fmt: skip
        items = []
        for i in range(4):
            page = article_html(f"Innocent {i}", paragraphs(4100 + i)).encode()
            innocent.add(f"/n/{i}", slow_page(page, 1.0))  # arrives while "heavy" runs
            items.append({"title": f"n{i}", "link": innocent.url(f"/n/{i}")})
        innocent.add("/n.xml", Route(rss(items), content_type="application/rss+xml",
                                     conditional=True))  # fmt: skip
        feeds = [Feed("hostile", hostile.url("/h.xml")), Feed("innocent", innocent.url("/n.xml"))]
        first = run(store, feeds, tight)
        second = run(store, feeds, tight)
    titles = sorted(r["title"] for r in read_committed(store).to_pylist())
    assert titles == [f"Innocent {i}" for i in range(4)]
    assert first.articles_written == 4 and dict(first.rejects) == {"extract_timeout": 1}
    assert second.feeds_not_modified == 1 and second.articles_written == 0


def test_same_run_id_twice_changes_nothing(store: Store, publisher: Publisher) -> None:
    first = run(store, publisher.feeds, settings(), run_id="manual-1")
    keys = sorted(k for k in store.list("") if not k.startswith("_tmp"))
    hits = dict(publisher.srv.hits)
    again = run(store, publisher.feeds, settings(), run_id="manual-1")
    assert again.already_committed and again.articles_written == first.articles_written
    assert sorted(k for k in store.list("") if not k.startswith("_tmp")) == keys
    assert dict(publisher.srv.hits) == hits  # not even a feed poll


def test_exactly_once_across_many_runs(store: Store, publisher: Publisher) -> None:
    from deltalake import DeltaTable

    reports = [run(store, publisher.feeds, settings(part_rows=2)) for _ in range(3)]
    table = DeltaTable(store.table_uri("articles"), storage_options=store.storage_options())
    found = pa.table(table.to_pyarrow_table())["article_id"].to_pylist()
    assert len(found) == len(set(found)) == len(publisher.good)
    assert [r.articles_written for r in reports] == [len(publisher.good), 0, 0]
    # one table version per run (and one for the table's creation), each naming its run
    history = {h["version"]: h for h in table.history()}
    assert sorted(history) == [0, 1, 2, 3]
    assert [history[v]["newsflow.run_id"] for v in (1, 2, 3)] == [r.run_id for r in reports]


def test_shards_stage_separately_and_commit_once(store: Store) -> None:
    from ingest.run import Run, commit_run

    with FixtureServer().running() as srv:
        feeds = []
        for f in range(4):
            items = []
            for i in range(3):
                n = f * 2 + i  # neighbouring feeds share one article
                srv.add(f"/s/{n}", Route(article_html(f"Shard story {n}", paragraphs(n)).encode()))
                items.append({"title": f"s{n}", "link": srv.url(f"/s/{n}")})
            srv.add(f"/f{f}.xml", Route(rss(items), content_type="application/rss+xml"))
            feeds.append(Feed(f"feed-{f}", srv.url(f"/f{f}.xml")))
        shards = [feeds[0::2], feeds[1::2]]  # neighbours, which share articles, split up
        for k, share in enumerate(shards):
            Run(store, share, settings(), run_id="airflow:run+1", shard=k).stage()
        # a retried shard (new attempt) stages again; only one attempt's parts count
        Run(store, shards[0], settings(), run_id="airflow:run+1", shard=0).stage()
        with pytest.raises(RuntimeError, match="shard 2 of run airflow:run\\+1 staged nothing"):
            commit_run(store, "airflow:run+1", shards=3)
        assert read_committed(store).num_rows == 0
        report = commit_run(store, "airflow:run+1", shards=2)
        again = commit_run(store, "airflow:run+1", shards=2)
    ids = read_committed(store)["article_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 9 == report.articles_written
    assert report.feeds_total == 4 and again.already_committed
    # the three articles both shards fetched are duplicates within the run, not articles
    # some earlier run committed
    assert report.skips["duplicate_in_run"] == 3 and report.duplicates_dropped_at_commit == 0
    assert not list(store.list("_staging/"))


# ------------------------------------------------------------------ hostile publishers


def test_a_header_trickling_server_cannot_hold_the_run(store: Store) -> None:
    with FixtureServer().running() as srv:
        srv.add("/ok", Route(article_html("Fine", paragraphs(3)).encode()))
        srv.add("/trickle", trickle_headers)
        srv.add("/feeds/trickle.xml", trickle_headers)
        items = [
            {"title": "t", "link": srv.url("/trickle")},
            {"title": "ok", "link": srv.url("/ok")},
        ]
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        feeds = [Feed("f", srv.url("/f.xml")), Feed("slowfeed", srv.url("/feeds/trickle.xml"))]
        started = time.monotonic()
        report = run(store, feeds, settings(total_timeout=2.0, read_timeout=1.0, http_retries=2))
        elapsed = time.monotonic() - started
    assert report.articles_written == 1 and report.rejects["timeout"] == 1
    assert report.failed_feeds == {"slowfeed": "timeout"}
    assert elapsed < 30, elapsed  # the run ends; before the fix it never did


def test_slow_pages_do_not_make_the_hosts_other_pages_fail(store: Store) -> None:
    with FixtureServer().running() as srv:

        def stall(req: BaseHTTPRequestHandler) -> None:
            time.sleep(2.5)

        items = []
        for i in range(2):
            srv.add(f"/stall/{i}", stall)
            items.append({"title": f"s{i}", "link": srv.url(f"/stall/{i}")})
        for i in range(6):
            srv.add(f"/n/{i}", Route(article_html(f"Normal {i}", paragraphs(20 + i)).encode()))
            items.append({"title": f"n{i}", "link": srv.url(f"/n/{i}")})
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        feeds = [Feed("f", srv.url("/f.xml"))]
        report = run(store, feeds, settings(total_timeout=2.0, read_timeout=5.0,
                                            per_host_concurrency=1))  # fmt: skip
    assert report.articles_written == 6
    assert dict(report.rejects) == {"timeout": 2}


def test_articles_identified_by_query_strings_are_all_kept(store: Store) -> None:
    with FixtureServer().running() as srv:
        items = []
        for i in range(9):
            page = article_html(f"Query story {i}", paragraphs(300 + i)).encode()
            srv.add(f"/story/{i}", Route(page))
            items.append({"title": f"q{i}", "link": srv.url(f"/redir?to=/story/{i}")})
        for i in range(3):
            items.append({"title": f"sid{i}", "link": srv.url(f"/article.php?sid={i}")})

        def redirect(req: BaseHTTPRequestHandler) -> None:
            from urllib.parse import parse_qs, urlsplit

            target = parse_qs(urlsplit(req.path).query)["to"][0]
            req.send_response(302)
            req.send_header("Location", target)
            req.send_header("Content-Length", "0")
            req.end_headers()

        def by_sid(req: BaseHTTPRequestHandler) -> None:
            sid = int(req.path.split("sid=")[1].split("&")[0])
            send_html(req, article_html(f"Sid story {sid}", paragraphs(400 + sid)).encode())

        srv.add("/redir", redirect)
        srv.add("/article.php", by_sid)
        tracked = srv.url("/article.php?sid=1&utm_source=rss&fbclid=x")
        items.append({"title": "tracked copy", "link": tracked})
        srv.add("/f.xml", Route(rss(items).replace(b"&", b"&amp;"), content_type="text/xml"))
        feeds = [Feed("q", srv.url("/f.xml"))]
        report = run(store, feeds, settings())
        again = run(store, feeds, settings())
    assert report.articles_written == 12, report.to_dict()
    assert report.skips == {"duplicate_in_run": 1}  # only the copy with tracking parameters
    urls = set(read_committed(store)["canonical_url"].to_pylist())
    assert srv.url("/article.php?sid=2") in urls and srv.url("/story/8") in urls
    assert again.articles_written == 0 and again.skips["already_seen"] == 13


def test_control_characters_from_a_feed_never_reach_the_atom_index(store: Store) -> None:
    import xml.etree.ElementTree as ET

    import feedparser

    from ingest.index import build

    with FixtureServer().running() as srv:
        # The page has no description of its own, so the feed's summary is the row's.
        page = article_html("Bell \x07 story", paragraphs(77)).encode()
        srv.add("/ctl", Route(page))
        items = [{"title": "Esc &#x1b; title", "link": srv.url("/ctl"),
                  "description": "Summary with &#x1b;[31m escape &#x0b; and bell"}]  # fmt: skip
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        report = run(store, [Feed("ctl", srv.url("/f.xml"))], settings())
    row = read_committed(store).to_pylist()[0]
    for value in (row["title"], row["summary"], row["text"]):
        assert not any(ord(c) < 32 and c not in "\t\n\r" for c in value or ""), value
    results = build(store, [date.fromisoformat(report.dates_touched[0])])
    atom = store.get_bytes(results[0].keys[2])
    ET.fromstring(atom)
    assert not feedparser.parse(atom).bozo


def test_an_unreadable_feed_state_costs_validators_never_the_run(store: Store) -> None:
    with FixtureServer().running() as srv:
        feeds = []
        for name in ("good", "wrongtypes"):
            srv.add(f"/{name}/1", Route(article_html(name, paragraphs(len(name))).encode()))
            items = [{"title": name, "link": srv.url(f"/{name}/1")}]
            srv.add(f"/{name}.xml", Route(rss(items), content_type="text/xml", conditional=True))
            feeds.append(Feed(name, srv.url(f"/{name}.xml")))
        first = run(store, feeds, settings())
        doc = json.loads(store.get_bytes("_state/feeds.json"))
        doc["feeds"]["wrongtypes"]["polls"] = "many"
        store.put_bytes("_state/feeds.json", json.dumps(doc).encode())
        second = run(store, feeds, settings())
        raw = store.get_bytes("_state/feeds.json")
        store.put_bytes("_state/feeds.json", raw[: len(raw) // 2])  # truncated
        third = run(store, feeds, settings())
    assert first.articles_written == 2
    # one bad entry: only that feed was polled afresh; nothing was fetched twice
    assert (second.feeds_not_modified, second.feeds_polled) == (1, 1)
    assert second.articles_written == 0 and second.skips["already_seen"] == 1
    # a truncated file: every feed polled afresh, still nothing doubled
    assert (third.feeds_not_modified, third.feeds_polled) == (0, 2)
    assert third.articles_written == 0 and third.skips["already_seen"] == 2
    assert read_committed(store).num_rows == 2
    assert len(list(store.list("_state/quarantine/"))) == 2
    fresh = json.loads(store.get_bytes("_state/feeds.json"))["feeds"]
    assert fresh["wrongtypes"]["polls"] == 1 and fresh["good"]["polls"] == 1
