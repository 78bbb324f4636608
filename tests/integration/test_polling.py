"""Adaptive polling in a real run on loopback: a source is skipped until it is due, what the
publisher says is honoured and a failing source backs off."""

from __future__ import annotations

from datetime import datetime
from http.server import BaseHTTPRequestHandler

import pytest

from ingest.config import Feed, Settings
from ingest.run import run
from ingest.state import load_feed_states
from ingest.store import LocalStore
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss


def adaptive(**kw: object) -> Settings:
    base = {"allow_networks": ["127.0.0.0/8"], "http_retries": 0, "workers": 1,
            "progress": False, "poll_min_interval": 600.0}  # fmt: skip
    base.update(kw)
    return Settings.from_env({}, **base)


def test_a_run_polls_only_due_sources(tmp_path) -> None:
    store = LocalStore(tmp_path)
    # the failing source on its own host: its Retry-After pauses that host for the run
    with FixtureServer().running() as srv, FixtureServer("127.0.0.2").running() as other:
        srv.add("/a", Route(article_html("Adaptive", paragraphs(31)).encode()))
        items = [{"title": "a", "link": srv.url("/a")}]
        srv.add("/plain.xml", Route(rss(items), content_type="application/rss+xml"))
        srv.add("/slow.xml", Route(rss([]).replace(b"<channel>", b"<channel><ttl>180</ttl>"),
                                   content_type="application/rss+xml"))  # fmt: skip
        other.add("/down.xml", Route(b"busy", status=503, headers={"Retry-After": "5400"}))
        feeds = [Feed("plain", srv.url("/plain.xml")), Feed("slow", srv.url("/slow.xml")),
                 Feed("down", other.url("/down.xml"))]  # fmt: skip
        first = run(store, feeds, adaptive())
        states = load_feed_states(store)
        second = run(store, feeds, adaptive())
        forced = run(store, feeds, adaptive(), poll_all=True)
    assert (first.feeds_polled, first.feeds_failed, first.feeds_not_due) == (2, 1, 0)
    started = datetime.fromisoformat(first.started_at)

    def due_in(name: str) -> float:
        return (datetime.fromisoformat(states[name].next_due_at) - started).total_seconds()

    assert due_in("plain") == pytest.approx(600, abs=1)  # new article: the minimum
    assert due_in("slow") == pytest.approx(3 * 3600, abs=1)  # its ttl of 180 minutes
    assert due_in("down") == pytest.approx(5400, abs=1)  # its Retry-After
    assert "Retry-After 5400s" in states["down"].last_error
    # the next run right away asks nobody
    assert (second.feeds_not_due, second.feeds_polled, second.feeds_failed) == (3, 0, 0)
    assert srv.hits["/plain.xml"] == 2 and other.hits["/down.xml"] == 2  # first run + --all
    assert forced.feeds_not_due == 0 and forced.feeds_failed == 1
    assert "3 not due" in second.summary()


def test_pages_of_a_rate_limited_host_are_retried_by_the_next_run(tmp_path) -> None:
    store = LocalStore(tmp_path)
    limited = {"on": True}
    pages = {f"/p{i}": article_html(f"Limited {i}", paragraphs(60 + i)).encode() for i in (1, 2)}

    def page(req: BaseHTTPRequestHandler) -> None:
        if limited["on"]:
            req.send_response(429)
            req.send_header("Retry-After", "3600")
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        body = pages[req.path]
        req.send_response(200)
        req.send_header("Content-Type", "text/html; charset=utf-8")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    with FixtureServer().running() as srv:
        for path in pages:
            srv.add(path, page)
        items = [{"title": p, "link": srv.url(p)} for p in pages]
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml", conditional=True))
        feeds = [Feed("limited", srv.url("/f.xml"))]
        settings = adaptive(poll_min_interval=0.0, per_host_concurrency=1)
        first = run(store, feeds, settings)
        page_hits = srv.hits["/p1"] + srv.hits["/p2"]
        limited["on"] = False
        second = run(store, feeds, settings)
    assert first.articles_written == 0 and page_hits == 1  # one 429, then no more asking
    assert first.rejects == {"http_429": 1, "rate_limited": 1}
    assert second.articles_written == 2  # nothing was lost: the feed was read in full again
