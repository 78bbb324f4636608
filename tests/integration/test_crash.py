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

from ingest.lake import open_table, read_committed
from ingest.store import Store, open_store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss

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
        filter(None, [str(Path(__file__).parents[2] / "src"), env.get("PYTHONPATH")])
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


def _sleeping(body: bytes, seconds: float, ctype: str = "text/html; charset=utf-8"):
    """A handler that answers after `seconds`: a fetch in flight for as long as it likes."""

    def handler(req: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        with contextlib.suppress(OSError):  # the run may have hung up: that is the point
            req.send_response(200)
            req.send_header("Content-Type", ctype)
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)

    return handler


def _terminate_when(
    proc: subprocess.Popen, ready, settle: float = 0.3, may_finish: bool = False
) -> tuple[int, float]:
    """SIGTERM the run once `ready()` holds; (exit status, seconds from signal to exit).
    `may_finish`: a run that ends before `ready()` is seen is (its exit status, 0.0)."""
    deadline = time.monotonic() + 90
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if may_finish and proc.poll() is not None:
        return proc.wait(), 0.0
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    time.sleep(settle)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        kill(proc)
    elapsed = time.monotonic() - sent
    assert b"Traceback" not in output, output.decode()[-2000:]
    return proc.returncode, elapsed


@pytest.mark.timeout(600)
def test_sigterm_at_any_point_of_a_run_exits_within_five_seconds(tmp_path: Path) -> None:
    """Waiting for the lease, polling a feed that hangs, fetching pages that hang,
    extracting a heavy page, committing: exit 143 within 5 s (a scheduler's kill grace
    period), the lease released (the next run starts without waiting) and, in the end,
    every article committed exactly once."""
    store_uri = str(tmp_path / "store")
    store = open_store(store_uri)
    env = {**os.environ, "INGEST_HTTP_RETRIES": "0", "INGEST_LEASE_WAIT": "0"}
    # long limits: without the stop cutting work short, the run would wait on them
    env |= {"INGEST_TOTAL_TIMEOUT": "60", "INGEST_READ_TIMEOUT": "60"}
    env |= {"INGEST_EXTRACT_TIMEOUT": "60", "INGEST_LEASE_TTL": "600"}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(Path(__file__).parents[2] / "src"), env.get("PYTHONPATH")])
    )
    with FixtureServer().running() as srv:
        fast = []
        for i in range(5):
            srv.add(
                f"/p/{i}", Route(article_html(f"Term story {i}", paragraphs(1300 + i)).encode())
            )
            fast.append({"title": f"p{i}", "link": srv.url(f"/p/{i}")})
        srv.add("/hanging", _sleeping(article_html("Late", paragraphs(1399)).encode(), 40))
        heavy = article_html("Heavy", paragraphs(1400, count=15000)).encode()
        srv.add("/heavy", Route(heavy))
        feeds_rss = {
            "fast": fast,
            "fetch": [*fast, {"title": "late", "link": srv.url("/hanging")}],
            "extract": [{"title": "heavy", "link": srv.url("/heavy")}],
        }
        for name, items in feeds_rss.items():
            srv.add(f"/{name}.xml", Route(rss(items), content_type="application/rss+xml"))
        srv.add("/poll.xml", _sleeping(rss(fast), 40, "application/rss+xml"))

        def feeds(name: str) -> Path:
            path = tmp_path / f"{name}.yaml"
            path.write_text(f"feeds:\n  - name: {name}\n    url: {srv.url(f'/{name}.xml')}\n")
            return path

        outcomes = {}
        # polling a feed that answers after 40 s
        proc = start_run(feeds("poll"), store_uri, env)
        outcomes["poll"] = _terminate_when(proc, lambda: srv.hits["/poll.xml"] >= 1)
        # fetching: one page hangs for 40 s while the others are done
        holder = start_run(feeds("fetch"), store_uri, env)
        outcomes["fetch"] = _terminate_when(holder, lambda: srv.hits["/hanging"] >= 1)
        # waiting for the lease of a run that holds the store
        holder = start_run(feeds("fetch"), store_uri, env)
        while srv.hits["/hanging"] < 2 and holder.poll() is None:
            time.sleep(0.01)
        waiter = start_run(feeds("fast"), store_uri, {**env, "INGEST_LEASE_WAIT": "120"})
        outcomes["lease_wait"] = _terminate_when(waiter, lambda: True, settle=2.0)
        outcomes["fetch_again"] = _terminate_when(holder, lambda: True)
        # extracting a heavy page (seconds of work in a worker)
        proc = start_run(feeds("extract"), store_uri, env)
        outcomes["extract"] = _terminate_when(proc, lambda: srv.hits["/heavy"] >= 1, settle=0.8)
        # committing
        proc = start_run(feeds("fast"), store_uri, env)
        commit_code, commit_seconds = _terminate_when(
            proc, lambda: unpublished(store), settle=0, may_finish=True
        )
        final = start_run(feeds("fast"), store_uri, env)
        output, _ = final.communicate(timeout=120)
    print("SIGTERM outcomes (exit, seconds):", outcomes, (commit_code, commit_seconds))
    for point, (code, seconds) in outcomes.items():
        assert code == 143, (point, outcomes)
        assert seconds < 5, (point, outcomes)
    assert commit_code in (0, 143) and commit_seconds < 5  # the commit may win the race
    assert final.returncode == 0, output.decode()  # every stop released the lease
    ids = check_visible(store)
    assert sorted(read_committed(store)["title"].to_pylist()) == [
        f"Term story {i}" for i in range(5)
    ]
    assert len(ids) == 5
