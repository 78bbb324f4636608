"""What an operator sees under the real scheduler (airflow standalone, LocalExecutor):
a run with failing feeds commits its articles and then shows `feed_health` failed, with one
alert naming the feeds; a broken feeds file fails on the first try, without retries; the
run's counters arrive as StatsD metrics and its summary in the task log."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ingest.lake import read_committed
from ingest.store import open_store
from newsflow_dev.airflow_local import airflow_env, dag_runs, start_standalone, stop
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Webhook:
    """A loopback alert receiver: every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class StatsdSink:
    """A UDP socket that keeps every StatsD line it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.extend(data.decode(errors="replace").splitlines())

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def task_instances(env: dict[str, str]) -> list[dict[str, Any]]:
    code = (
        "import json; from airflow.models import TaskInstance as T;"
        "from airflow.utils.session import create_session\n"
        "with create_session() as s:\n"
        "    print(json.dumps([dict(run=t.run_id, task=t.task_id, state=str(t.state),"
        " tries=t.try_number, label=t.rendered_map_index) for t in s.query(T).filter("
        "T.dag_id == 'news_ingest')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def wait_for_run(env: dict[str, str], count: int, timeout: float) -> dict[str, Any]:
    """The newest news_ingest run once `count` runs exist and it has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = dag_runs("news_ingest", env)
        if len(runs) >= count and runs[0]["state"] in ("success", "failed"):
            return runs[0]
        time.sleep(3)
    raise AssertionError(f"news_ingest run {count} did not finish in {timeout:.0f} s")


@pytest.mark.timeout(900)
def test_failing_feeds_and_a_broken_feeds_file_under_the_scheduler(
    s3_bucket, tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    hook = Webhook()
    statsd = StatsdSink()
    with FixtureServer().running() as srv:
        srv.add("/a", Route(article_html("Ops story", paragraphs(4242)).encode()))
        srv.add("/ok.xml", Route(rss([{"title": "a", "link": srv.url("/a")}]),
                                 content_type="application/rss+xml"))  # fmt: skip
        srv.add("/gone.xml", Route(b"gone", status=404))
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(
            f"feeds:\n  - name: healthy\n    url: {srv.url('/ok.xml')}\n"
            f"  - name: gone\n    url: {srv.url('/gone.xml')}\n"
            f"  - name: refused\n    url: http://127.0.0.1:{free_port()}/feed.xml\n"
        )
        conn = {
            "conn_type": "aws",
            "login": endpoint.access_key,
            "password": endpoint.secret_key,
            "extra": {"endpoint_url": endpoint.endpoint_url, "region_name": "us-east-1"},
        }
        env = airflow_env(tmp_path / "airflow", free_port(), {
            "AIRFLOW_CONN_NEWSFLOW_S3": json.dumps(conn),
            "NEWSFLOW_STORE_URI": f"s3://{bucket}/lake",
            "NEWSFLOW_FEEDS_FILE": str(feeds),
            "NEWSFLOW_ALERT_WEBHOOK": hook.url,
            "NEWSFLOW_INGEST_SCHEDULE": "@once",
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_HTTP_RETRIES": "0",
            "INGEST_WORKERS": "1",
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        })  # fmt: skip
        proc = start_standalone(env, tmp_path / "standalone.log")
        try:
            first = wait_for_run(env, 1, 420)
            # a typo in the feeds file: the next run must fail at once, not after retries
            feeds.write_text(f"feeds:\n  - nmae: healthy\n    url: {srv.url('/ok.xml')}\n")
            subprocess.run(["airflow", "dags", "trigger", "news_ingest"], env=env, check=True,
                           capture_output=True, timeout=120)  # fmt: skip
            second = wait_for_run(env, 2, 240)
            tis = task_instances(env)
        finally:
            stop(proc)
            hook.close()
            statsd.close()
    standalone_log = (tmp_path / "standalone.log").read_text(errors="replace")[-3000:]

    # run 1: data committed, index announced, and the feed problem is red, with one alert
    assert first["state"] == "failed", standalone_log
    run1 = {t["task"]: t for t in tis if t["run"] == first["run_id"]}
    assert run1["commit"]["state"] == "success" and run1["announce"]["state"] == "success"
    assert run1["feed_health"]["state"] == "failed" and run1["feed_health"]["tries"] == 1
    assert run1["ingest_shard"]["label"] == "gone +2"  # one host: one shard, named by feeds
    ids = read_committed(open_store(f"s3://{bucket}/lake"))["article_id"].to_pylist()
    assert len(ids) == 1
    health_alerts = [a for a in hook.received if a.get("kind") == "feed_health"]
    assert len(health_alerts) == 1, hook.received
    alert = health_alerts[0]
    assert alert["text"].startswith("newsflow FEEDS UNHEALTHY news_ingest run=")
    assert "2 of 3 feeds failed (67%)" in alert["text"]
    assert set(alert["failed"]) == {"gone", "refused"} and "http_404" in alert["failed"]["gone"]
    assert alert["run_id"] == first["run_id"] and alert["try_number"] == 1
    assert alert["log_url"].endswith("/tasks/feed_health?try_number=1")
    assert alert["log_url"] in alert["text"]

    # run 2: a ConfigError fails `plan` on try 1; the alert says which and links its log
    assert second["state"] == "failed"
    run2 = {t["task"]: t for t in tis if t["run"] == second["run_id"]}
    assert run2["plan"]["state"] == "failed" and run2["plan"]["tries"] == 1, run2
    failed = [a for a in hook.received if a.get("kind") == "task_failed"]
    assert len(failed) == 1 and failed[0]["task_id"] == "plan", hook.received
    assert "unknown key(s) 'nmae'" in failed[0]["text"]
    assert "not retried" in failed[0]["text"] and "try=1" in failed[0]["text"]

    # the run's counters through Airflow's metrics (StatsD gauges)
    gauges = {
        line.split(":")[0]: line.split(":")[1].split("|")[0]
        for line in statsd.lines
        if line.startswith("airflow.newsflow.run.") and line.endswith("|g")
    }
    assert gauges["airflow.newsflow.run.articles_written"] == "1", statsd.lines[-50:]
    assert gauges["airflow.newsflow.run.feeds_failed"] == "2"
    assert gauges["airflow.newsflow.run.feeds_total"] == "3"

    # the run summary is in the commit task's log as log records, not stdout
    logs = list((tmp_path / "airflow" / "logs").rglob("task_id=commit/attempt=1.log"))
    records = [json.loads(line) for path in logs for line in path.read_text().splitlines()
               if line.startswith("{")]  # fmt: skip
    summary = [r for r in records if r.get("logger") == "newsflow"]
    assert any("failed feed   gone: http_404" in r["event"] for r in summary), records[-20:]
    assert any(r["event"].strip().startswith("articles        1 written") for r in summary)
