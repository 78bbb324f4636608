"""kill -9 of a real `ingest run` at any point: nothing partial, nothing twice, nothing lost."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from fixture_server import FixtureServer, Route, article_html, paragraphs, rss

from ingest.lake import open_table, read_committed
from ingest.store import Store, open_store

pytestmark = pytest.mark.integration

PAGES = 30


@pytest.fixture
def site() -> Iterator[FixtureServer]:
    with FixtureServer().running() as srv:
        for i in range(PAGES):
            html = article_html(f"Crash story {i}", paragraphs(1000 + i)).encode()

            def page(req: BaseHTTPRequestHandler, html: bytes = html) -> None:
                time.sleep(0.05)  # long enough for a kill to land mid-run
                req.send_response(200)
                req.send_header("Content-Type", "text/html; charset=utf-8")
                req.send_header("Content-Length", str(len(html)))
                req.end_headers()
                req.wfile.write(html)

            srv.add(f"/c/{i}", page)
        items = [{"title": f"c{i}", "link": srv.url(f"/c/{i}")} for i in range(PAGES)]
        srv.add(
            "/feed.xml", Route(rss(items), content_type="application/rss+xml", conditional=True)
        )
        yield srv


def start_run(feeds: Path, store_uri: str, env: dict[str, str]) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "ingest.cli",
        "run",
        "--feeds",
        str(feeds),
        "--store",
        store_uri,
        "--allow-network",
        "127.0.0.0/8",
        "--no-progress",
        "--workers",
        "2",
    ]
    return subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def kill(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group: the run and its extraction workers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def check_visible(store: Store) -> list[str]:
    """What a reader of the articles table sees: no duplicate ids."""
    ids = read_committed(store)["article_id"].to_pylist()
    assert len(ids) == len(set(ids)), "a reader sees an article twice"
    return ids


def unpublished(store: Store) -> bool:
    """A run is committed (its articles transaction exists) but its publication is not
    finished (its staging, with the commit request, is still there)."""
    table = open_table(store, "articles")
    if table is None:
        return False
    runs = [k.split("/")[1] for k in store.list("_staging/") if k.endswith("/commit.json")]
    return any(table.transaction_version(run) is not None for run in runs)


@pytest.mark.timeout(600)
def test_kill_minus_nine_anywhere_keeps_exactly_once(
    site: FixtureServer, s3_bucket, tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    store_uri = f"s3://{bucket}/news"
    store = open_store(store_uri)
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - name: crash\n    url: {site.url('/feed.xml')}\n")
    env = {**os.environ, **endpoint.env(), "INGEST_PART_ROWS": "1", "INGEST_HTTP_RETRIES": "0"}
    # A killed run's lease is taken over at once on this host; short TTL and a wait in case.
    env.update({"INGEST_LEASE_TTL": "1", "INGEST_LEASE_WAIT": "60"})
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH")])
    )
    outcomes = []
    # Kill after fixed delays (mid-fetch, mid-extract, mid-write) and, the hard one, the
    # moment the articles commit exists but its publication is unfinished (mid-commit).
    for when in (0.4, 1.0, "commit", "commit+0.05", 1.6, "commit"):
        proc = start_run(feeds, store_uri, env)
        deadline = time.monotonic() + 60
        if isinstance(when, str):  # wait for this run's own commit point
            while time.monotonic() < deadline and proc.poll() is None and not unpublished(store):
                time.sleep(0.005)
            time.sleep(float(when.partition("+")[2] or 0))
        else:
            time.sleep(float(when))
        killed_mid_commit = unpublished(store)
        kill(proc)
        visible = check_visible(store)
        outcomes.append((when, len(visible), killed_mid_commit))
    print("kill outcomes (when, visible rows, mid-commit):", outcomes)
    assert any(mid for _, _, mid in outcomes), f"no kill landed mid-commit: {outcomes}"
    final = start_run(feeds, store_uri, env)
    output, _ = final.communicate(timeout=120)
    assert final.returncode == 0, output.decode()
    ids = check_visible(store)
    assert len(ids) == PAGES, outcomes
    assert not unpublished(store)
