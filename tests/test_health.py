"""Feed health and failure alerts: what ops see without reading logs."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest import alerts
from ingest.config import Feed, Settings
from ingest.health import feed_health, render_table
from ingest.run import run
from ingest.state import FEEDS, load_feed_states
from ingest.store import LocalStore, Store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss

pytestmark = pytest.mark.integration


def test_feed_state_tracks_failures_not_modified_and_staleness(tmp_path) -> None:
    store = LocalStore(tmp_path)
    settings = Settings.from_env({}, allow_networks=["127.0.0.0/8"], http_retries=0,
                                 workers=1, progress=False, poll_min_interval=0.0)  # fmt: skip
    with FixtureServer().running() as srv:
        srv.add("/a", Route(article_html("Health", paragraphs(5)).encode()))
        srv.add(
            "/good.xml",
            Route(
                rss([{"title": "a", "link": srv.url("/a")}]),
                content_type="application/rss+xml",
                conditional=True,
            ),
        )
        srv.add("/bad.xml", Route(b"", status=500))
        feeds = [Feed("good", srv.url("/good.xml")), Feed("bad", srv.url("/bad.xml"))]
        for _ in range(3):
            run(store, feeds, settings)
    states = load_feed_states(store)
    good, bad = states["good"], states["bad"]
    assert (good.polls, good.not_modified, good.consecutive_failures) == (3, 2, 0)
    assert good.last_new_article_at is not None and good.last_status == "not_modified"
    assert (bad.polls, bad.consecutive_failures, bad.last_status) == (3, 3, "failed")
    assert "http_500" in bad.last_error and bad.last_success_at is None

    rows = {r.state.name: r for r in feed_health(store, timedelta(hours=24))}
    assert rows["bad"].failing and not rows["good"].failing and not rows["good"].stale
    later = datetime.now(UTC) + timedelta(days=3)
    assert {r.state.name: r.stale for r in feed_health(store, timedelta(hours=24), later)} == {
        "bad": True, "good": True}  # fmt: skip
    table = render_table(list(rows.values()))
    assert "bad" in table and "failing" in table and "good " not in table
    assert "2 feeds: 1 failing, 0 stale, 1 ok" in table
    assert f"{2 / 3:.0%}" in render_table(list(rows.values()), show_all=True)


def test_feed_health_reads_a_damaged_state_without_writing(store: Store) -> None:
    """Health is a read (status, the DAG's feed_health task): a damaged entry is skipped,
    never quarantined from here; only a run's commit keeps the file aside."""
    doc = {"feeds": {"a": {"name": "a", "url": "https://a.example/f", "polls": "many"},
                     "b": {"name": "b", "url": "https://b.example/f"}}}  # fmt: skip
    store.put_bytes(FEEDS, json.dumps(doc).encode())
    before = {k: store.get_bytes(k) for k in store.list("")}
    rows = feed_health(store, timedelta(hours=24))
    assert [r.state.name for r in rows] == ["b"]
    assert {k: store.get_bytes(k) for k in store.list("")} == before


def test_failure_alert_posts_one_line_to_the_webhook() -> None:
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        error = RuntimeError("bucket 'b' does not exist\n(details)")
        url = "http://airflow.example/dags/news_ingest/runs/x"
        line = alerts.failure_line("news_ingest", "commit", "scheduled__x", 2, error, url)
        assert "\n" not in line and line.startswith("newsflow FAILED news_ingest.commit")
        assert line.endswith(" log=http://airflow.example/dags/news_ingest/runs/x")
        fields = {"dag_id": "news_ingest", "try_number": 2}
        assert alerts.notify(line, f"http://127.0.0.1:{server.server_address[1]}/hook", fields)
        assert received == [{"text": line, **fields}]
        assert alerts.notify(line, "http://127.0.0.1:1/nothing-listens") is False
    finally:
        server.shutdown()
        server.server_close()


def test_error_column_is_cut_between_words() -> None:
    from ingest.health import clip_words

    error = "connection refused by the publisher's load balancer after 3 attempts " * 3
    cut = clip_words(error, 80)
    assert len(cut) <= 80 and cut.endswith("…")
    assert error.startswith(cut[:-1]) and error[len(cut) - 1] == " "  # a whole word last
    assert clip_words("short\nand\tsimple", 80) == "short and simple"
    assert clip_words("x" * 200, 80) == "x" * 79 + "…"  # one long word: cut, marked


def test_run_health_thresholds_and_message(tmp_path) -> None:
    from ingest.health import run_health

    failed = {"b": "http_404: gone", "a": "connect: connection refused"}
    report = {"feeds_total": 10, "feeds_disabled": 0, "failed_feeds": failed}
    strict = run_health(report)  # default: any failed feed
    assert strict.unhealthy and strict.reasons == ["2 of 10 feeds failed (20%)"]
    assert strict.message().startswith("2 of 10 feeds failed (20%) | failed: a (connect: ")
    assert "b (http_404: gone)" in strict.message()
    assert not run_health(report, max_failed=2).unhealthy
    assert run_health(report, max_failed=None, max_failed_percent=20).unhealthy
    assert not run_health(report, max_failed=None, max_failed_percent=25).unhealthy
    healthy = run_health({"feeds_total": 3, "failed_feeds": {}})
    assert not healthy.unhealthy and healthy.message() == "all feeds healthy"
    many = {"feeds_total": 30, "failed_feeds": {f"f{i:02}": "http_500" for i in range(15)}}
    assert run_health(many).message(limit=10).count("http_500") == 10
    assert "and 5 more" in run_health(many).message(limit=10)


def test_run_health_counts_stale_feeds_of_the_run_only(tmp_path) -> None:
    from ingest.health import run_health
    from ingest.state import write_feed_states

    store = LocalStore(tmp_path)
    old = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    fresh = datetime.now(UTC).isoformat()
    write_feed_states(store, {
        "quiet": {"name": "quiet", "url": "https://q.example/", "last_success_at": fresh,
                  "last_new_article_at": old},
        "busy": {"name": "busy", "url": "https://b.example/", "last_success_at": fresh,
                 "last_new_article_at": fresh},
        "dropped": {"name": "dropped", "url": "https://d.example/", "last_new_article_at": old},
    })  # fmt: skip
    report = {"feeds_total": 2, "failed_feeds": {}}
    verdict = run_health(report, store, feeds=["quiet", "busy"], stale_after=timedelta(hours=48),
                         max_stale=0)  # fmt: skip
    assert verdict.stale == ["quiet"] and verdict.reasons == ["1 feeds stale"]
    assert "stale: quiet" in verdict.message()
    assert not run_health(report, store, feeds=["quiet", "busy"],
                          stale_after=timedelta(hours=48), max_stale=1).unhealthy  # fmt: skip


def test_permanent_errors_are_the_ones_no_retry_can_fix() -> None:
    from ingest.config import ConfigError
    from ingest.errors import permanent
    from ingest.lease import StoreBusy
    from ingest.state import StateFileError
    from ingest.store import StoreError, StoreMissing, StoreUnusable

    for exc in (ConfigError("nmae"), StateFileError("bad"), StoreUnusable("no bucket"),
                StoreMissing("typo")):  # fmt: skip
        assert permanent(exc), exc
    for exc in (StoreError("write failed"), StoreBusy("held"), TimeoutError(), OSError(5, "io"),
                RuntimeError("worker died")):  # fmt: skip
        assert not permanent(exc), exc
