"""Feed health and failure alerts: what ops see without reading logs (a real run's feed
states, a damaged state file on both stores, an alert posted to a loopback webhook)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ingest import alerts
from ingest.config import Feed, Settings
from ingest.health import feed_health, render_table
from ingest.run import run
from ingest.state import FEEDS, load_feed_states
from ingest.store import LocalStore, Store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss


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
