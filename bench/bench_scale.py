"""Scale benchmark: what a run costs must not grow with what the store already holds.

Builds a store holding N committed articles in M commits through the engine's own commit
path (synthetic rows, no fetching or extraction), then times two real runs of F feeds
served on loopback - a first run with one new article per feed, then a no-change run in
which every feed answers 304 - on that store and on an empty one, on S3 (SeaweedFS).
Prints each run's peak RSS (the run's largest process), wall time and object-store
requests, counted by a loopback proxy in front of SeaweedFS that every client (boto3 and
delta-rs) goes through.

    .venv/bin/python bench/bench_scale.py --articles 1000000 --commits 17520 --feeds 2000

Numbers and how to read them: bench/README.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]

from ingest import ids, schema  # noqa: E402
from ingest.lake import CommitRequest, Lake, PartWriter  # noqa: E402
from ingest.lake.maintain import maintain  # noqa: E402
from ingest.report import RunReport  # noqa: E402
from ingest.store import open_store  # noqa: E402
from newsflow_dev.embedded_s3 import EmbeddedS3, find_weed  # noqa: E402
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss  # noqa: E402

# ------------------------------------------------------------------ counting proxy


class CountingProxy:
    """Forwards HTTP requests to the S3 server unchanged (the Host header included, so
    signatures stay valid) and counts them by method, and requests and the server's time
    by prefix."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.counts: Counter[str] = Counter()
        self.by_prefix: Counter[str] = Counter()  # "METHOD prefix" -> requests
        self.seconds_by_prefix: Counter[str] = Counter()  # "METHOD prefix" -> server time
        self._lock = threading.Lock()

    @contextmanager
    def running(self) -> Any:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                kind = self.command
                if kind == "GET" and ("list-type=" in self.path or self.path.endswith("/")):
                    kind = "LIST"
                where = _prefix_of(self.path, kind)
                started = time.monotonic()
                conn = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=300
                )
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for key, value in self.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection"):
                        conn.putheader(key, value)
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
                with proxy._lock:
                    proxy.counts[kind] += 1
                    proxy.by_prefix[f"{kind} {where}"] += 1
                    proxy.seconds_by_prefix[f"{kind} {where}"] += time.monotonic() - started
                self.send_response_only(resp.status, resp.reason)
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def prefixes(self) -> Counter[str]:
        with self._lock:
            return Counter(self.by_prefix)

    def seconds(self) -> Counter[str]:
        with self._lock:
            return Counter(self.seconds_by_prefix)


def _prefix_of(path: str, kind: str) -> str:
    """Where a request went, coarsely: the listed prefix, or the key's first two levels
    under the store root (bucket/store/<level1>/<level2>), for finding what grows."""
    from urllib.parse import parse_qs

    parts = urlsplit(path)
    if kind == "LIST":
        listed = parse_qs(parts.query).get("prefix", [""])[0] or parts.path
        return listed.split("/", 1)[1] if "/" in listed else listed  # without the store name
    return "/".join(parts.path.split("/")[3:5])  # /bucket/store/<level1>/<level2>


# ------------------------------------------------------------------ building history


def synthetic_row(commit: int, n: int, when: datetime) -> dict[str, Any]:
    url = f"https://history{commit % 97}.example/{commit}/{n}"
    return {
        "article_id": ids.article_id(url), "url": url, "final_url": url, "canonical_url": url,
        "source": f"feed-{commit % 500}", "feed_url": "https://history.example/feed",
        "title": f"Story {commit}-{n}", "authors": [], "published_at": when,
        "published_at_source": "feed", "updated_at": None, "fetched_at": when,
        "language": "en", "site_name": None, "summary": None,
        "text": f"Body of story {commit}-{n}. " * 40, "word_count": 200, "categories": [],
        "tags": [], "image_url": None, "content_sha256": "0" * 64,
        "simhash": random.getrandbits(63), "http_status": 200, "run_id": f"hist-{commit}",
        "schema_version": 1,
    }  # fmt: skip


def first_missing_commit(store: Any, commits: int) -> int:
    """Where an interrupted build stopped: history commits are recorded in order, each as
    its run's app transaction, so the first one missing is found by bisection."""
    lake = Lake(store)
    table = lake.articles()
    low, high = 0, commits
    while low < high:
        mid = (low + high) // 2
        if table.transaction_version(f"hist-{mid}") is None:
            high = mid
        else:
            low = mid + 1
    return low


def build_history(
    store: Any, articles: int, commits: int, maintain_every: int = 0, start_at: int = 0
) -> float:
    """M commits of N/M synthetic articles each, one per 30 minutes of a past year. With
    `maintain_every`, the daily maintenance runs every that many commits, as
    news_maintenance does in production (48 commits: one day of 30-minute runs)."""
    t0 = time.monotonic()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    per_commit, extra = divmod(articles, commits)
    lake = Lake(store)
    for c in range(start_at, commits):
        when = start + timedelta(minutes=30 * c)
        run_id = f"hist-{c}"
        writer = PartWriter(
            store, schema.article(), "articles", run_id, when.date().isoformat(), 10_000
        )
        count = per_commit + (1 if c < extra else 0)
        rows = [synthetic_row(c, n, when) for n in range(count)]
        for row in rows:
            writer.add(row)
        report = RunReport(run_id, store.uri, when.isoformat()).to_dict()
        lake.commit(
            CommitRequest(
                run_id=run_id,
                run_key=run_id,
                parts=writer.close(),
                article_ids=[r["article_id"] for r in rows],
                feed_states={},
                report=report,
            )
        )
        if maintain_every and (c + 1) % maintain_every == 0:
            maintain(store)
        if c % max(1, commits // 100) == 0:
            rate = (c + 1 - start_at) / (time.monotonic() - t0)
            print(f"  history: {c + 1}/{commits} commits ({rate:.1f}/s)", flush=True)
    return time.monotonic() - t0


def local_history(directory: Path, articles: int, commits: int, maintain_every: int) -> None:
    """Build the history once on a local directory; later runs with the same size reuse it,
    and an interrupted build of the same size continues where it stopped."""
    done, started = directory / ".built", directory / ".building"
    wanted = f"{articles} {commits}"
    if done.exists() and done.read_text() == wanted:
        print(f"history: reusing {directory}", flush=True)
        return
    store = open_store(str(directory / "big"))
    start_at = 0
    if started.exists() and started.read_text() == wanted:
        start_at = first_missing_commit(store, commits)
        print(f"history: continuing at commit {start_at}", flush=True)
    elif directory.exists() and any(directory.iterdir()):
        raise SystemExit(f"{directory} holds something else; give an empty or new directory")
    directory.mkdir(parents=True, exist_ok=True)
    started.write_text(wanted)
    seconds = build_history(store, articles, commits, maintain_every, start_at)
    print(f"history built locally in {seconds:.0f} s", flush=True)
    done.write_text(wanted)


def copy_history(directory: Path, embedded: EmbeddedS3) -> float:
    """Copy a locally built store to s3://bench/big through the filer (thousands of objects
    a second, where one S3 PUT at a time would take hours for millions of key markers)."""
    t0 = time.monotonic()
    subprocess.run(
        [str(find_weed()), "filer.copy", "-c", "16", str(directory.resolve() / "big"),
         f"http://{embedded.filer_address}/buckets/bench/"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.monotonic() - t0


# ------------------------------------------------------------------ the measured runs


def add_site(srv: FixtureServer, feeds: int, feeds_file: Path) -> None:
    lines = ["feeds:"]
    for f in range(feeds):
        html = article_html(f"Scale story {f}", paragraphs(10_000 + f, count=4)).encode()
        srv.add(f"/p/{f}", Route(html))
        items = [{"title": f"s{f}", "link": srv.url(f"/p/{f}")}]
        srv.add(f"/f/{f}.xml", Route(rss(items), content_type="text/xml", conditional=True))
        lines.append(f"  - name: feed-{f}\n    url: {srv.url(f'/f/{f}.xml')}")
    feeds_file.write_text("\n".join(lines) + "\n")


class PeakRSS:
    """Samples a process and its descendants: the largest single process and the tree."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.process_mb = 0.0
        self.tree_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.02):
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                sizes = []
                for proc in procs:
                    with suppress(psutil.Error):
                        sizes.append(proc.memory_info().rss / 2**20)
            except psutil.Error:
                return
            if sizes:
                self.process_mb = max(self.process_mb, max(sizes))
                self.tree_mb = max(self.tree_mb, sum(sizes))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measured_run(
    store_uri: str, feeds_file: Path, env: dict[str, str], proxy: CountingProxy
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "ingest.cli", "run", "--feeds", str(feeds_file),
        "--store", store_uri, "--allow-network", "127.0.0.0/8", "--no-progress",
        "--all",  # poll every feed: the no-change run measures 2,000 conditional GETs
    ]  # fmt: skip
    before = proxy.snapshot()
    before_prefixes = proxy.prefixes()
    before_seconds = proxy.seconds()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rss = PeakRSS(proc.pid)
    out, err = proc.communicate()
    seconds = time.monotonic() - t0
    rss.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"run failed: {err.decode()[-2000:]}")
    written = next(
        (line.split()[1] for line in out.decode().splitlines() if line.strip().startswith(
            "articles")), "?"
    )  # fmt: skip
    return {
        "seconds": seconds,
        "requests": proxy.snapshot() - before,
        "by_prefix": proxy.prefixes() - before_prefixes,
        "seconds_by_prefix": proxy.seconds() - before_seconds,
        "written": written,
        "process_mb": rss.process_mb,
        "tree_mb": rss.tree_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=1_000)
    parser.add_argument("--feeds", type=int, default=2_000)
    parser.add_argument(
        "--no-maintenance",
        action="store_true",
        help="measure on the history as committed, without the daily compaction first",
    )
    parser.add_argument(
        "--history-dir",
        type=Path,
        help="build the history on this local directory (through the same commit path, much"
        " faster than over S3) and copy it into the bucket with `weed filer.copy`; a directory"
        " already built for the same --articles/--commits is reused",
    )
    parser.add_argument("--build-only", action="store_true", help="stop after --history-dir")
    parser.add_argument(
        "--maintain-every",
        type=int,
        default=48,
        metavar="COMMITS",
        help="run the daily maintenance while building, every this many commits (48: one "
        "day of 30-minute runs, as news_maintenance does; 0: never, only before measuring)",
    )
    args = parser.parse_args()
    if args.history_dir is not None:
        local_history(args.history_dir, args.articles, args.commits, args.maintain_every)
        if args.build_only:
            return
    elif args.build_only:
        parser.error("--build-only needs --history-dir")
    print(f"history: {args.articles:,} articles in {args.commits:,} commits; "
          f"runs of {args.feeds:,} feeds; S3 on SeaweedFS behind a counting proxy")  # fmt: skip
    embedded = EmbeddedS3()
    with embedded as s3:
        s3.client().create_bucket(Bucket="bench")
        proxy = CountingProxy(s3.endpoint_url)
        with proxy.running() as endpoint, FixtureServer().running() as srv:
            os.environ.update(s3.env())  # the history is built straight, not counted
            big = open_store("s3://bench/big")
            if args.history_dir is not None:
                seconds = copy_history(args.history_dir, embedded)
                print(f"history copied into the bucket in {seconds:.0f} s", flush=True)
            else:
                seconds = build_history(big, args.articles, args.commits, args.maintain_every)
                print(f"history built in {seconds:.0f} s", flush=True)
            if not args.no_maintenance:  # what news_maintenance does every day
                t0 = time.monotonic()
                done = maintain(big)
                print(f"maintenance in {time.monotonic() - t0:.0f} s: {done.summary()}")
            env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": str(ROOT / "src")}
            feeds_file = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "feeds.yaml"
            add_site(srv, args.feeds, feeds_file)
            results = {}
            for label, uri in (("empty store", "s3://bench/empty"), ("history", "s3://bench/big")):
                first = measured_run(uri, feeds_file, env, proxy)
                again = measured_run(uri, feeds_file, env, proxy)
                results[label] = (first, again)
    print()
    print(
        f"{'store':<13}{'run':<11}{'written':>8}{'seconds':>9}{'RSS MB':>8}{'tree MB':>9}"
        "  object-store requests"
    )
    for label, (first, again) in results.items():
        for name, r in (("first", first), ("no-change", again)):
            reqs = ", ".join(f"{k} {v}" for k, v in sorted(r["requests"].items()))
            print(
                f"{label:<13}{name:<11}{r['written']:>8}{r['seconds']:>9.1f}"
                f"{r['process_mb']:>8.0f}{r['tree_mb']:>9.0f}  "
                f"{sum(r['requests'].values())} ({reqs})"
            )
    print("\nrequests and server ms by prefix, no-change runs (empty store / history):")
    e_run, h_run = results["empty store"][1], results["history"][1]
    e_prefixes, h_prefixes = e_run["by_prefix"], h_run["by_prefix"]
    e_ms, h_ms = e_run["seconds_by_prefix"], h_run["seconds_by_prefix"]
    for where in sorted(set(e_prefixes) | set(h_prefixes), key=lambda w: -h_ms[w])[:25]:
        print(
            f"  {e_prefixes[where]:>6} {h_prefixes[where]:>6}"
            f"  {e_ms[where] * 1000:>8.0f} {h_ms[where] * 1000:>8.0f} ms  {where}"
        )
    e1, e2 = results["empty store"]
    h1, h2 = results["history"]
    for name, e, h in (("first run", e1, h1), ("no-change run", e2, h2)):
        print(
            f"history/empty, {name}: {h['seconds'] / e['seconds']:.2f}x time, "
            f"{h['process_mb'] / e['process_mb']:.2f}x peak RSS, "
            f"{sum(h['requests'].values()) / max(1, sum(e['requests'].values())):.2f}x requests"
        )


if __name__ == "__main__":
    main()
