"""Benchmark: the newsflow pipeline end to end against plain trafilatura, same pages.

N distinct article pages (built from the 18 demo-site pages) are served on loopback with
RSS 2.0 feeds and a permissive robots.txt. Two things are timed over the very same pages:

* plain trafilatura: `trafilatura.bare_extraction(html, url=url, **EXTRACT_OPTIONS)` mapped
  over all pages by a 2-worker (by default) forkserver `ProcessPoolExecutor` with a chunk
  size; the pages are fetched and decoded beforehand, untimed. Timed twice: with a warm
  pool (workers already started and past their first extraction) and including pool
  start-up and shutdown.
* the pipeline: `ingest.run.run` on a fresh LocalStore, fresh run: feed polling,
  robots.txt, fetch, decode, extraction in the engine's own pool (started inside the run),
  normalization, Parquet parts, commit. Wall clock from the call to its return.

The forkserver itself (which preloads trafilatura, exactly as the engine configures it) is
started once before anything is timed, so neither side pays for it.

It prints pages/second for both, the ratio pipeline / trafilatura against a target of 0.8,
CPU seconds of the parent process and of the extraction workers, how busy the workers were,
and peak RSS of the whole process tree per phase. `--profile` adds an instrumented pipeline
run that attributes the parent's CPU time to the engine's stages.

A benchmark, not a test: run it by hand, `python bench/bench_pipeline.py --help`.

Everything at module level is standard library only: the extraction workers re-import this
module (forkserver start method), and they should not pay for imports they do not use.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape as xml_escape

if TYPE_CHECKING:
    from newsflow_dev.loopback import FixtureServer, Route

TARGET_RATIO = 0.8
SAMPLE_INTERVAL = 0.05
MB = 1024 * 1024


# --------------------------------------------------------------------------- the pages


@dataclass
class BenchPage:
    index: int
    path: str  # served path (no query)
    link: str  # what the feed links to (some carry a query string, like the demo site)
    body: bytes
    content_type: str
    title: str
    template: str
    published: datetime


@dataclass
class BenchSite:
    base_url: str
    pages: list[BenchPage]
    routes: dict[str, Route] = field(default_factory=dict)
    feed_urls: list[str] = field(default_factory=list)


_P_OPEN = re.compile(r"<p(?:\s[^>]*)?>")


def _distinct_page(text: str, base: str, art: Any, index: int, url: str) -> tuple[str, str]:
    """Make demo page `art` (rendered for `base`) a distinct article at `url`."""
    old_url = base + art.path
    text, n_url = re.subn(re.escape(f'"{old_url}"'), f'"{url}"', text)
    if n_url < 2:  # rel=canonical and og:url at least
        raise RuntimeError(f"{art.slug}: canonical/og:url not found ({n_url} hits)")
    title = f"{art.title} ({index})"
    forms = {art.title: title}  # as written in <title>/<h1>, escaped, and inside JSON-LD
    forms[html.escape(art.title)] = html.escape(title)
    forms[html.escape(art.title, quote=False)] = html.escape(title, quote=False)
    forms[json.dumps(art.title)[1:-1]] = json.dumps(title)[1:-1]
    raw_json = json.dumps(art.title, ensure_ascii=False)[1:-1]
    forms[raw_json] = json.dumps(title, ensure_ascii=False)[1:-1]
    n_title = 0
    for old, new in forms.items():
        text, n = re.subn(re.escape(old), lambda _m, r=new: r, text)
        n_title += n
    if n_title < 2:  # <title> and <h1> at least
        raise RuntimeError(f"{art.slug}: title found only {n_title} times")
    # Perturb the body: number a few paragraphs of the article text so content hashes differ.
    h1 = text.find("<h1")
    end = text.find("</article>", h1)
    end = len(text) if end < 0 else end
    opens = [m for m in _P_OPEN.finditer(text, h1, end)]
    chosen = opens[0:6:2]
    if len(chosen) < 2:
        raise RuntimeError(f"{art.slug}: too few body paragraphs to perturb")
    for k, m in reversed(list(enumerate(chosen))):
        text = text[: m.end()] + f"({index}.{k + 1}) " + text[m.end() :]
    return text, title


_MENU = (
    "World Europe Americas Asia Africa Middle-East Politics Business Markets Companies "
    "Technology Science Climate Health Education Culture Books Film Music Sport Football "
    "Tennis Cycling Opinion Editorials Letters Podcasts Video Newsletters Puzzles Travel"
).split()


def _chrome(index: int, kilobytes: int) -> tuple[str, str]:
    """Publisher boilerplate of about `kilobytes` KB, as real article pages carry it.

    Real news pages weigh 100-500 KB of HTML: inline configuration and state scripts,
    mega-menus, teaser grids, comment widgets, footer link farms. The demo pages are lean
    (8-13 KB), which makes per-page overhead look larger than it is in production; this
    puts a realistic share of chrome around the same article. Returns (head, tail) HTML.
    """
    if kilobytes <= 0:
        return "", ""
    budget = kilobytes * 1024
    state = {
        "page": {"id": index, "section": _MENU[index % len(_MENU)], "ads": list(range(40))},
        "user": {"consent": False, "segments": [f"seg-{index % 97}-{k}" for k in range(60)]},
        "experiments": {f"exp_{k}": (index * 7 + k) % 3 for k in range(80)},
    }
    script = json.dumps(state)
    head = [f'<script type="application/json" id="__STATE__">{script}</script>']
    menu = "".join(
        f'<li class="mega"><a href="/{name.lower()}">{name}</a><ul>'
        + "".join(f'<li><a href="/{name.lower()}/{k}">{name} {k}</a></li>' for k in range(12))
        + "</ul></li>"
        for name in _MENU
    )
    head.append(f'<nav class="mega-menu" aria-label="Sections"><ul>{menu}</ul></nav>')
    tail: list[str] = []
    size = sum(map(len, head))
    k = 0
    while size < budget:
        k += 1
        teaser = (
            f'<div class="teaser"><a href="/story/{index}-{k}"><img src="/img/{index}-{k}.jpg" '
            f'alt="Picture {k}"><h3>Related story {k} about {_MENU[(index + k) % len(_MENU)]}'
            f"</h3></a><p>Short teaser line {k} for a related article.</p>"
            f'<span class="time">{k} hours ago</span></div>'
        )
        block = (
            teaser if k % 5 else f"<script>window.__ad_{k}={{slot:{k},sizes:[[300,250]]}};</script>"
        )
        tail.append(block)
        size += len(block)
    footer = "".join(f'<a href="/about/{name.lower()}">{name}</a>' for name in _MENU * 2)
    tail.append(f'<footer class="site-links">{footer}</footer>')
    return "".join(head), '<section class="related">' + "".join(tail) + "</section>"


def _add_chrome(text: str, index: int, kilobytes: int) -> str:
    head, tail = _chrome(index, kilobytes)
    if not head:
        return text
    start = text.find(">", text.find("<body")) + 1
    end = text.rfind("</body>")
    return text[:start] + head + text[start:end] + tail + text[end:]


def build_site(base_url: str, n_pages: int, feed_size: int, chrome_kb: int = 0) -> BenchSite:
    from newsflow_dev.demo_site import load_site
    from newsflow_dev.loopback import Route

    base = base_url.rstrip("/")
    site = load_site()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rendered = site.render(base, now)
    arts = site.articles
    bench = BenchSite(base, [])
    for i in range(n_pages):
        art = arts[i % len(arts)]
        res = rendered[art.path]
        path = f"/bench/{i:05d}{art.path}"
        url = base + path
        link = url + ("?ref=home" if "?" in art.served_path else "")
        text, title = _distinct_page(res.body.decode(art.encoding), base, art, i, url)
        text = _add_chrome(text, i, chrome_kb)
        body = text.encode(art.encoding)
        published = now - timedelta(minutes=art.age_minutes, seconds=i)
        page = BenchPage(i, path, link, body, res.content_type, title, art.slug, published)
        bench.pages.append(page)
        bench.routes[path] = Route(body, content_type=res.content_type)
    bench.routes["/robots.txt"] = Route(
        b"User-agent: *\nAllow: /\n", content_type="text/plain; charset=utf-8"
    )
    for k, start in enumerate(range(0, n_pages, feed_size)):
        path = f"/feeds/bench-{k:03d}.xml"
        chunk = bench.pages[start : start + feed_size]
        bench.routes[path] = Route(
            _rss(base, k, chunk, now), content_type="application/rss+xml; charset=utf-8"
        )
        bench.feed_urls.append(base + path)
    return bench


def _rss(base: str, k: int, pages: list[BenchPage], now: datetime) -> bytes:
    items = []
    for p in pages:
        items.append(
            "    <item>\n"
            f"      <title>{xml_escape(p.title)}</title>\n"
            f"      <link>{xml_escape(p.link)}</link>\n"
            f'      <guid isPermaLink="false">bench-{p.index:05d}</guid>\n'
            f"      <pubDate>{format_datetime(p.published, usegmt=True)}</pubDate>\n"
            f"      <description>Benchmark article {p.index} ({p.template}).</description>\n"
            "    </item>\n"
        )
    doc = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0">\n  <channel>\n'
        f"    <title>The Meridian Ledger: benchmark feed {k}</title>\n"
        f"    <link>{xml_escape(base)}/</link>\n"
        "    <description>Benchmark articles</description>\n"
        "    <language>en</language>\n"
        f"    <lastBuildDate>{format_datetime(now, usegmt=True)}</lastBuildDate>\n"
        + "".join(items)
        + "  </channel>\n</rss>\n"
    )
    return doc.encode("utf-8")


# --------------------------------------------------------------------------- the server


def fetch_all(bench: BenchSite) -> list[tuple[str, str]]:
    """GET every page once over one keep-alive connection; decode as the engine does."""
    import http.client
    from urllib.parse import urlsplit

    from ingest.net import decode_html

    parts = urlsplit(bench.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    out = []
    try:
        for page in bench.pages:
            conn.request("GET", page.link.removeprefix(bench.base_url))
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{page.link} answered {resp.status}")
            out.append((decode_html(body, resp.getheader("Content-Type", "")), page.link))
    finally:
        conn.close()
    return out


# --------------------------------------------------------------------------- measuring


class TreeSampler:
    """Every 50 ms: RSS of this process and all its descendants, and their CPU times."""

    def __init__(self, interval: float = SAMPLE_INTERVAL) -> None:
        import psutil

        self._psutil = psutil
        self.me = psutil.Process()
        self.interval = interval
        self.peak_tree = 0
        self.peak_self = 0
        self.samples = 0
        self.cpu_first: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _cpu(self, proc: Any) -> float:
        ct = proc.cpu_times()
        return ct.user + ct.system

    def sample(self, first: bool = False) -> None:
        psutil = self._psutil
        total = 0
        try:
            procs = [self.me, *self.me.children(recursive=True)]
        except psutil.Error:
            return
        for proc in procs:
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    cpu = self._cpu(proc)
                    ppid = proc.ppid()
            except psutil.Error:
                continue
            total += rss
            pid = proc.pid
            if pid == self.me.pid:
                self.peak_self = max(self.peak_self, rss)
                self.kind[pid] = "parent"
            else:  # direct children: forkserver, resource tracker; below them: workers
                self.kind[pid] = "helper" if ppid == self.me.pid else "worker"
            if pid not in self.cpu_first:
                self.cpu_first[pid] = cpu if first else 0.0
            self.cpu_last[pid] = cpu
        self.peak_tree = max(self.peak_tree, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def cpu(self, kind: str) -> float:
        return sum(self.cpu_last[p] - self.cpu_first[p] for p, k in self.kind.items() if k == kind)


@dataclass
class Phase:
    name: str
    seconds: float
    pages: int
    parent_cpu: float
    worker_cpu: float
    workers: int
    peak_tree_mb: float
    peak_self_mb: float
    other_load: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    @property
    def worker_utilization(self) -> float:
        return self.worker_cpu / (self.seconds * self.workers) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 3),
            "pages": self.pages,
            "pages_per_second": round(self.pages_per_second, 2),
            "parent_cpu_seconds": round(self.parent_cpu, 3),
            "worker_cpu_seconds": round(self.worker_cpu, 3),
            "worker_utilization": round(self.worker_utilization, 3),
            "peak_tree_rss_mb": round(self.peak_tree_mb, 1),
            "peak_parent_rss_mb": round(self.peak_self_mb, 1),
            "other_load_cores": round(self.other_load, 2),
            **self.extra,
        }


def measure(name: str, pages: int, workers: int, fn: Any) -> tuple[Phase, Any]:
    import psutil

    me = psutil.Process()
    with TreeSampler() as sampler:
        cpu0, sys0 = me.cpu_times(), _busy(psutil.cpu_times())
        t0 = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - t0
        cpu1, sys1 = me.cpu_times(), _busy(psutil.cpu_times())
    parent_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    ours = parent_cpu + sampler.cpu("worker") + sampler.cpu("helper")
    phase = Phase(
        name,
        seconds,
        pages,
        parent_cpu,
        sampler.cpu("worker"),
        workers,
        sampler.peak_tree / MB,
        sampler.peak_self / MB,
        # CPU the rest of the machine used meanwhile, in cores: other load skews results.
        max(0.0, (sys1 - sys0 - ours) / seconds) if seconds else 0.0,
    )
    return phase, result


def _busy(times: Any) -> float:
    """System-wide busy CPU seconds (all cores) from psutil.cpu_times()."""
    idle = ("idle", "iowait", "steal", "guest", "guest_nice")  # guest is inside user already
    return sum(times) - sum(getattr(times, name, 0.0) for name in idle)


# --------------------------------------------------------------------------- plain trafilatura


def _bare(item: tuple[str, str]) -> tuple[str | None, str]:
    """Runs in a worker: plain trafilatura with the engine's options, text back."""
    import trafilatura

    from ingest.extract import EXTRACT_OPTIONS

    html_text, url = item
    doc = trafilatura.bare_extraction(html_text, url=url, **EXTRACT_OPTIONS)
    if doc is None:
        return None, ""
    return doc.title, (doc.text or "")


def _pool(workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


def _chunksize(n: int, workers: int) -> int:
    return max(1, n // (workers * 16))


def trafilatura_cold(items: list[tuple[str, str]], workers: int) -> list[Any]:
    """Pool start-up, all pages, shutdown."""
    with _pool(workers) as pool:
        return list(pool.map(_bare, items, chunksize=_chunksize(len(items), workers)))


def trafilatura_warm(items: list[tuple[str, str]], workers: int) -> tuple[Phase, list[Any]]:
    """Start the pool and give every worker a few extractions first; time only the map."""
    with _pool(workers) as pool:
        warm = [pool.submit(_bare, items[i % len(items)]) for i in range(workers * 3)]
        for f in warm:
            f.result()
        return measure(
            "trafilatura (warm pool)",
            len(items),
            workers,
            lambda: list(pool.map(_bare, items, chunksize=_chunksize(len(items), workers))),
        )


def check_baseline(results: list[Any], bench: BenchSite) -> int:
    ok = 0
    for (_title, text), page in zip(results, bench.pages, strict=True):
        if any(f"({page.index}.{k})" in text for k in (1, 2, 3)):
            ok += 1
    return ok


# --------------------------------------------------------------------------- the pipeline


def _settings(args: argparse.Namespace) -> Any:
    from ingest.config import Settings

    return Settings.from_env(
        {},
        allow_networks=["127.0.0.0/8"],
        workers=args.workers,
        per_host_concurrency=args.per_host_concurrency,
        fetch_concurrency=args.fetch_concurrency,
        progress=False,
        archive_raw=args.archive,
    )


def pipeline_phase(bench: BenchSite, args: argparse.Namespace) -> Phase:
    """Times the run itself; the committed-rows check after it is untimed."""
    holder: dict[str, Any] = {}

    from ingest import run as engine  # imported before the clock starts
    from ingest.config import Feed
    from ingest.store import LocalStore

    def go() -> Any:
        feeds = [Feed(f"bench-{k:03d}", url) for k, url in enumerate(bench.feed_urls)]
        settings = _settings(args)
        tmp = tempfile.mkdtemp(prefix="newsflow-bench-")
        holder["tmp"] = tmp
        store = LocalStore(Path(tmp) / "lake")
        holder["store"] = store
        return engine.run(store, feeds, settings)

    bench_server_cpu0 = _server.handler_cpu if _server else 0.0
    phase, report = measure("pipeline (end to end)", len(bench.pages), args.workers, go)
    rows = -1
    try:
        if args.verify:
            from ingest.lake import read_committed

            rows = read_committed(holder["store"]).num_rows
    finally:
        import shutil

        shutil.rmtree(holder["tmp"], ignore_errors=True)
    phase.extra = {
        "articles_written": report.articles_written,
        "committed_rows": rows,
        "pages_fetched": report.pages_fetched,
        "articles_extracted": report.articles_extracted,
        "entries_seen": report.entries_seen,
        "rejects": dict(report.rejects),
        "skips": dict(report.skips),
        "bytes_received": report.bytes_received,
        "raw_archive_bytes": report.raw_bytes,
        "report_seconds": report.seconds,
        "server_cpu_seconds": round(
            (_server.handler_cpu if _server else 0.0) - bench_server_cpu0, 3
        ),
    }
    return phase


_server: FixtureServer | None = None  # set by main(), for the server's CPU figure


# --------------------------------------------------------------------------- profiling


class StageClock:
    """Wraps engine functions (in this process only) to add up wall and thread-CPU time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        clock = self

        def timed(*a: Any, **kw: Any) -> Any:
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return original(*a, **kw)
            finally:
                w1, c1 = time.perf_counter(), time.thread_time()
                with clock.lock:
                    clock.wall[label] = clock.wall.get(label, 0.0) + w1 - w0
                    clock.cpu[label] = clock.cpu.get(label, 0.0) + c1 - c0
                    clock.calls[label] = clock.calls.get(label, 0) + 1
                    clock.first.setdefault(label, w0)
                    clock.last[label] = w1

        self._undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()


class ThreadCPU:
    """Every 20 ms: CPU time of each thread of this process, grouped by thread role."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self.me = psutil.Process()
        self.interval = interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.group: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="thread-cpu-sampler", daemon=True)

    @staticmethod
    def _role(t: threading.Thread) -> str:
        name = t.name
        if name.startswith("Thread-"):  # unnamed: its target or its class tells the role
            return name.split("(", 1)[1].rstrip(")") if "(" in name else type(t).__name__
        return re.sub(r"[_-]?\d+$", "", name)

    def sample(self, first: bool = False) -> None:
        roles = {t.native_id: self._role(t) for t in threading.enumerate()}
        for th in self.me.threads():
            cpu = th.user_time + th.system_time
            if th.id not in self.first:
                self.first[th.id] = cpu if first else 0.0
            self.last[th.id] = cpu
            if th.id in roles:
                self.group[th.id] = roles[th.id]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> ThreadCPU:
        self.sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, cpu in self.last.items():
            role = self.group.get(tid, "(exited before first sample)")
            out[role] = out.get(role, 0.0) + cpu - self.first[tid]
        return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v > 0}


def profile_pipeline(
    bench: BenchSite, items: list[tuple[str, str]], args: argparse.Namespace
) -> dict[str, Any]:
    """One more pipeline run with stage clocks in the parent; and worker-side costs."""
    import pickle

    from ingest import extract, extractor_pool, lake, net, normalize
    from ingest.run import crawl, page

    # First a run with only the per-thread CPU sampler, then one with stage clocks.
    with ThreadCPU() as threads:
        plain = pipeline_phase(bench, args)
    clock = StageClock()
    # Only functions called in this process are wrapped: anything sent to the worker pool
    # is pickled by reference and must stay the very same object.
    for owner, attr, label in (
        (crawl, "poll", "poll feed (fetch + parse)"),
        (net.RobotsCache, "allowed", "robots check"),
        (net.HttpClient, "get", "http get (all)"),
        (net.Response, "text", "decode html (Response.text)"),
        (extractor_pool.ExtractorPool, "call", "pool call: submit+wait (all)"),
        (extractor_pool.ExtractorPool, "extract", "  pool call for a page"),
        (extractor_pool.ExtractorPool, "_get", "  pool create/get"),
        (extractor_pool.ExtractorPool, "close", "pool shutdown"),
        (page, "article_row", "article_row"),
        (normalize.ids, "url_key", "ids.url_key"),
        (lake.PartWriter, "add", "PartWriter.add"),
        (lake.PartWriter, "flush", "PartWriter.flush (Parquet)"),
        (lake.Lake, "commit", "Lake.commit"),
        (lake.Lake, "recover", "Lake.recover"),
        (lake.KeyIndex, "committed", "KeyIndex.committed (key lookups)"),
        (crawl.Crawl, "run", "Crawl.run (poll..parts)"),
        (page.PageStage, "__call__", "PageStage (one page)"),
    ):
        if callable(getattr(owner, attr, None)):  # the engine evolves: wrap what exists
            clock.wrap(owner, attr, label)
    try:
        t_start = time.perf_counter()
        phase = pipeline_phase(bench, args)
    finally:
        clock.restore()
    t_end = t_start + phase.seconds
    stages = []
    for label in clock.wall:
        stages.append(
            {
                "stage": label,
                "calls": clock.calls[label],
                "wall_s": round(clock.wall[label], 3),
                "parent_cpu_s": round(clock.cpu[label], 3),
                "first_at_s": round(clock.first[label] - t_start, 3),
                "last_end_at_s": round(clock.last[label] - t_start, 3),
            }
        )
    # Worker side, serially in this process: what extract_page adds to bare_extraction.
    sample = items[: min(len(items), 36)]
    costs = {"bare_extraction": 0.0, "extract_page": 0.0, "fingerprints": 0.0, "pickle": 0.0}
    rounds = 3
    for _ in range(rounds):
        for h, u in sample:
            t0 = time.process_time()
            _bare((h, u))
            t1 = time.process_time()
            row = extract.extract_page(h, u)
            t2 = time.process_time()
            extract.fingerprints(row["text"])
            t3 = time.process_time()
            pickle.loads(pickle.dumps((extract.extract_page, (h, u))))
            pickle.loads(pickle.dumps(row))
            t4 = time.process_time()
            costs["bare_extraction"] += t1 - t0
            costs["extract_page"] += t2 - t1
            costs["fingerprints"] += t3 - t2
            costs["pickle"] += t4 - t3
    per_page = {k: round(1000 * v / (rounds * len(sample)), 3) for k, v in costs.items()}
    # The same warm pool: plain trafilatura chunked, one task per page, and the engine's
    # worker function one task per page (what the pipeline's workers do, minus fetching).
    n = len(items)
    urls = [u for _h, u in items]
    htmls = [h for h, _u in items]
    pool_runs = {}
    with _pool(args.workers) as pool:
        list(pool.map(extract.extract_page, htmls[: args.workers * 4], urls, chunksize=1))
        for label, call in (
            (
                "bare_extraction, chunked",
                lambda: list(pool.map(_bare, items, chunksize=_chunksize(n, args.workers))),
            ),
            ("bare_extraction, 1 task/page", lambda: list(pool.map(_bare, items, chunksize=1))),
            (
                "extract_page, 1 task/page",
                lambda: list(pool.map(extract.extract_page, htmls, urls, chunksize=1)),
            ),
        ):
            ph, _ = measure(label, n, args.workers, call)
            pool_runs[label] = {
                "seconds": round(ph.seconds, 3),
                "pages_per_second": round(ph.pages_per_second, 1),
                "worker_cpu_s": round(ph.worker_cpu, 3),
                "parent_cpu_s": round(ph.parent_cpu, 3),
            }
    return {
        "phase": phase.as_dict(),
        "span_s": round(t_end - t_start, 3),
        "stages": stages,
        "plain_run": plain.as_dict(),
        "parent_thread_cpu_s": threads.by_role(),
        "worker_side_cpu_ms_per_page": per_page,
        "warm_pool": pool_runs,
    }


# --------------------------------------------------------------------------- report


def verdict(ratio: float) -> str:
    return "PASS" if ratio >= TARGET_RATIO else "BELOW"


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print(
        f"\nnewsflow benchmark: {cfg['pages']} pages ({cfg['templates']} templates, "
        f"{cfg['page_mb']:.1f} MB of HTML, {cfg['feeds']} feeds), {cfg['workers']} workers "
        f"on {cfg['cpus']} CPUs, best of {cfg['repeat']}"
    )
    head = (
        f"{'phase':<34}{'seconds':>8}{'pages/s':>9}{'parent CPU s':>14}"
        f"{'worker CPU s':>14}{'worker busy':>12}{'peak tree RSS MB':>18}{'other load':>12}"
    )
    print(head)
    print("-" * len(head))
    for p in result["phases"]:
        print(
            f"{p['name']:<34}{p['seconds']:>8.2f}{p['pages_per_second']:>9.1f}"
            f"{p['parent_cpu_seconds']:>14.2f}{p['worker_cpu_seconds']:>14.2f}"
            f"{p['worker_utilization']:>11.0%} {p['peak_tree_rss_mb']:>17.0f}"
            f"{p['other_load_cores']:>12.2f}"
        )
    first = result.get("pipeline_first_run")
    if cfg["repeat"] > 1 and first:
        print(
            f"{'  (pipeline, first run of process)':<34}{first['seconds']:>8.2f}"
            f"{first['pages_per_second']:>9.1f}{first['parent_cpu_seconds']:>14.2f}"
            f"{first['worker_cpu_seconds']:>14.2f}{first['worker_utilization']:>11.0%} "
            f"{first['peak_tree_rss_mb']:>17.0f}{first['other_load_cores']:>12.2f}"
        )
    print("-" * len(head))
    busy = max(p["other_load_cores"] for p in result["phases"])
    if busy > 0.2:
        print(
            f"WARNING: other processes used up to {busy:.2f} cores during a phase; "
            "numbers are skewed, rerun on an idle machine"
        )
    for r in result["ratios"]:
        print(
            f"ratio pipeline / {r['against']:<29} {r['ratio']:.2f}   target "
            f"{TARGET_RATIO:.2f}   {r['verdict']}"
        )
    pipe = next(p for p in result["phases"] if p["name"].startswith("pipeline"))
    print(
        f"pipeline: {pipe['articles_written']} articles written of {cfg['pages']} "
        f"(committed rows {pipe['committed_rows']}), fetched {pipe['pages_fetched']}, "
        f"rejects {pipe['rejects'] or 'none'}, skips {pipe['skips'] or 'none'}, "
        f"{pipe['bytes_received'] / MB:.1f} MB received, "
        f"{pipe['raw_archive_bytes'] / MB:.1f} MB of raw WARC archived, "
        f"loopback server CPU {pipe['server_cpu_seconds']:.2f} s"
    )
    if pipe["articles_written"] != cfg["pages"]:
        print(
            f"MISMATCH: the pipeline wrote {pipe['articles_written']} articles for "
            f"{cfg['pages']} pages; see rejects and skips above"
        )
    base = result["baseline_check"]
    print(f"trafilatura: {base['ok']} of {cfg['pages']} pages gave text with the page's marker")
    ru = result["maxrss"]
    print(
        f"getrusage maxrss: self {ru['self_mb']:.0f} MB, children {ru['children_mb']:.0f} MB "
        "(children = waited-for descendants only; workers are forkserver's children)"
    )
    if "profile" in result:
        prof = result["profile"]
        print(f"\nprofile: pipeline run with stage clocks, {prof['phase']['seconds']:.2f} s")
        print(
            f"{'stage (parent process)':<34}{'calls':>7}{'wall s':>9}{'CPU s':>8}"
            f"{'first at':>10}{'last end':>10}"
        )
        for s in prof["stages"]:
            print(
                f"{s['stage']:<34}{s['calls']:>7}{s['wall_s']:>9.2f}{s['parent_cpu_s']:>8.2f}"
                f"{s['first_at_s']:>10.2f}{s['last_end_at_s']:>10.2f}"
            )
        plain = prof["plain_run"]
        print(
            f"uninstrumented run: {plain['seconds']:.2f} s, {plain['pages_per_second']:.0f} "
            f"pages/s, parent CPU {plain['parent_cpu_seconds']:.2f} s, worker CPU "
            f"{plain['worker_cpu_seconds']:.2f} s; parent CPU by thread role (s):"
        )
        for role, cpu in prof["parent_thread_cpu_s"].items():
            print(f"    {role:<40}{cpu:>7.2f}")
        print("worker-side CPU per page, serial (ms):", prof["worker_side_cpu_ms_per_page"])
        print("warm pool, all pages, no fetching:")
        for label, v in prof["warm_pool"].items():
            print(
                f"    {label:<32}{v['seconds']:>6.2f} s {v['pages_per_second']:>6.0f} pages/s"
                f"  worker CPU {v['worker_cpu_s']:.2f} s  parent CPU {v['parent_cpu_s']:.2f} s"
            )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=600, help="distinct article pages (600)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="extraction workers")
    ap.add_argument("--repeat", type=int, default=1, help="best of R runs of each phase (1)")
    ap.add_argument("--feed-size", type=int, default=100, help="entries per RSS feed (100)")
    ap.add_argument(
        "--chrome-kb",
        type=int,
        default=100,
        help="about this many KB of publisher boilerplate per page, as real article pages "
        "carry (100); 0 serves the lean 8-13 KB demo pages",
    )
    ap.add_argument(
        "--per-host-concurrency",
        type=int,
        default=None,
        help="pipeline connections to the (single) loopback host; default: engine default",
    )
    ap.add_argument(
        "--fetch-concurrency", type=int, default=None, help="pipeline fetch threads (default)"
    )
    ap.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    ap.add_argument(
        "--no-archive",
        dest="archive",
        action="store_false",
        help="run the pipeline without the raw WARC archive (to measure what it costs)",
    )
    ap.add_argument(
        "--profile", action="store_true", help="add an instrumented pipeline run (untimed)"
    )
    ap.add_argument(
        "--no-verify", dest="verify", action="store_false", help="skip reading committed rows"
    )
    args = ap.parse_args(argv)
    if args.pages < 1 or args.workers < 1 or args.repeat < 1 or args.feed_size < 1:
        ap.error("--pages, --workers, --repeat and --feed-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    global _server
    import logging

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # The engine's pool preloads the extractor in the forkserver; start it
    # here first so both sides share one forkserver set up the same way, before any timing.
    from ingest.extractor_pool import start_forkserver

    start_forkserver()

    from newsflow_dev.loopback import FixtureServer

    with FixtureServer(server_version="NewsflowBench/1.0").running() as server:
        _server = server
        bench = build_site(server.base_url, args.pages, args.feed_size, args.chrome_kb)
        server.routes.update(bench.routes)
        items = fetch_all(bench)
        print(
            f"serving {len(bench.pages)} pages and {len(bench.feed_urls)} feeds at "
            f"{server.base_url}; workers={args.workers}",
            file=sys.stderr,
        )

        best: dict[str, Phase] = {}
        first_pipeline: Phase | None = None
        baseline_ok = 0
        for r in range(args.repeat):
            cold, results = measure(
                "trafilatura (incl. pool start-up)",
                len(items),
                args.workers,
                lambda: trafilatura_cold(items, args.workers),
            )
            baseline_ok = check_baseline(results, bench)
            warm, _ = trafilatura_warm(items, args.workers)
            pipe = pipeline_phase(bench, args)
            first_pipeline = first_pipeline or pipe
            for ph in (warm, cold, pipe):
                print(
                    f"  run {r + 1}/{args.repeat}: {ph.name:<34} {ph.seconds:7.2f} s "
                    f"{ph.pages_per_second:7.1f} pages/s",
                    file=sys.stderr,
                )
                if ph.name not in best or ph.seconds < best[ph.name].seconds:
                    best[ph.name] = ph
        warm = best["trafilatura (warm pool)"]
        cold = best["trafilatura (incl. pool start-up)"]
        pipe = best["pipeline (end to end)"]
        ratios = []
        bases = (("trafilatura (warm pool)", warm), ("trafilatura (incl. start-up)", cold))
        for against, base in bases:
            ratio = pipe.pages_per_second / base.pages_per_second
            ratios.append({"against": against, "ratio": round(ratio, 3), "verdict": verdict(ratio)})
        ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        ru_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        result: dict[str, Any] = {
            "config": {
                "pages": len(bench.pages),
                "templates": len({p.template for p in bench.pages}),
                "page_mb": round(sum(len(p.body) for p in bench.pages) / MB, 2),
                "feeds": len(bench.feed_urls),
                "workers": args.workers,
                "cpus": os.cpu_count(),
                "repeat": args.repeat,
                "chunksize": _chunksize(len(items), args.workers),
                "per_host_concurrency": _settings(args).per_host_concurrency,
                "fetch_concurrency": _settings(args).fetch_concurrency,
                "python": sys.version.split()[0],
            },
            "phases": [warm.as_dict(), cold.as_dict(), pipe.as_dict()],
            # The first run in a process also pays one-time imports; `ingest run` is one.
            "pipeline_first_run": first_pipeline.as_dict() if first_pipeline else None,
            "ratios": ratios,
            "target_ratio": TARGET_RATIO,
            "baseline_check": {"ok": baseline_ok},
            "maxrss": {"self_mb": round(ru_self, 1), "children_mb": round(ru_children, 1)},
        }
        if args.profile:
            result["profile"] = profile_pipeline(bench, items, args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return 0 if pipe.extra["articles_written"] == len(bench.pages) else 1


if __name__ == "__main__":
    sys.exit(main())
