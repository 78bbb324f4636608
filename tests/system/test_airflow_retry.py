"""Under the real scheduler (airflow standalone, LocalExecutor): a shard task killed with
SIGKILL mid-run is retried by Airflow, and the committed articles are exactly once."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import psutil
import pytest

from ingest.lake import read_committed
from ingest.store import open_store
from newsflow_dev.airflow_local import (
    airflow_env,
    dag_runs,
    session_processes,
    start_standalone,
    stop,
)
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss

ROOT = Path(__file__).parents[2]


PAGES_PER_FEED = 4


def slow(body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def handler(req: BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)  # a shard takes several seconds: time to kill it mid-run
        req.send_response(200)
        req.send_header("Content-Type", "text/html; charset=utf-8")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    return handler


def fetching_task(site_port: int) -> psutil.Process | None:
    """The Airflow task process that has a connection open to the site: a running shard."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if not any("airflow" in part for part in proc.info["cmdline"] or []):
                continue
            if any(c.raddr and c.raddr.port == site_port for c in proc.net_connections("tcp")):
                return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


@pytest.mark.timeout(900)
def test_killed_shard_is_retried_without_duplicates(s3_bucket, tmp_path: Path) -> None:

    endpoint, bucket = s3_bucket
    with FixtureServer().running() as srv:
        site_port = int(srv.base_url.rsplit(":", 1)[1])
        feeds_yaml = "feeds:\n"
        for f in range(2):
            items = []
            for i in range(PAGES_PER_FEED):
                n = f * 10 + i
                body = article_html(f"Retry story {n}", paragraphs(1200 + n)).encode()
                srv.add(f"/r/{n}", slow(body))
                items.append({"title": f"r{n}", "link": srv.url(f"/r/{n}")})
            srv.add(f"/f{f}.xml", Route(rss(items), content_type="application/rss+xml"))
            feeds_yaml += f"  - name: rf-{f}\n    url: {srv.url(f'/f{f}.xml')}\n"
        (tmp_path / "feeds.yaml").write_text(feeds_yaml)
        conn = {
            "conn_type": "aws",
            "login": endpoint.access_key,
            "password": endpoint.secret_key,
            "extra": {"endpoint_url": endpoint.endpoint_url, "region_name": "us-east-1"},
        }
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            api_port = sock.getsockname()[1]
        env = airflow_env(tmp_path / "airflow", api_port, {
            "AIRFLOW_CONN_NEWSFLOW_S3": json.dumps(conn),
            "NEWSFLOW_STORE_URI": f"s3://{bucket}/lake",
            "NEWSFLOW_FEEDS_FILE": str(tmp_path / "feeds.yaml"),
            "NEWSFLOW_INGEST_SCHEDULE": "@once",
            "INGEST_ALLOW_NETWORKS": "127.0.0.0/8",
            "INGEST_WORKERS": "1",
            "INGEST_PER_HOST_CONCURRENCY": "1",
            "NEWSFLOW_RETRY_DELAY_SECONDS": "3",  # the killed shard's retry, without waiting 30 s
        })  # fmt: skip
        proc = start_standalone(env, tmp_path / "standalone.log")
        killed = None
        state = None
        try:
            deadline = time.monotonic() + 240
            while killed is None and time.monotonic() < deadline:
                task = fetching_task(site_port)
                if task is not None:
                    time.sleep(1.0)
                    task.send_signal(signal.SIGKILL)
                    killed = task.pid
                time.sleep(0.3)
            assert killed, "no shard task was seen fetching"
            deadline = time.monotonic() + 420
            while time.monotonic() < deadline:
                runs = dag_runs("news_ingest", env)
                state = runs[0]["state"] if runs else None
                if state in ("success", "failed"):
                    break
                time.sleep(5)
        finally:
            stop(proc)
    assert state == "success", (tmp_path / "standalone.log").read_text(errors="replace")[-3000:]
    tries = subprocess.run(
        [sys.executable, "-c",
         "import json; from airflow.models import TaskInstance as T;"
         "from airflow.utils.session import create_session\n"
         "with create_session() as s:\n"
         "    print(json.dumps([t.try_number for t in s.query(T).filter("
         "T.dag_id == 'news_ingest', T.task_id == 'ingest_shard')]))"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    assert max(json.loads(tries)) >= 2, tries  # the killed shard ran again
    ids = read_committed(open_store(f"s3://{bucket}/lake"))["article_id"].to_pylist()
    assert len(ids) == len(set(ids)) == 2 * PAGES_PER_FEED
    time.sleep(1)
    assert session_processes(proc.pid) == [], "processes of the Airflow session outlived it"
