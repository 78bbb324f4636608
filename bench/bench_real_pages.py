"""Benchmark: `ingest run` against plain trafilatura on real pages, whole process against
whole process, as a user runs them.

The real pages of the extraction corpus (`../shared/corpora/trafilatura-eval/`, see
bench_extraction.py; override with NEWSFLOW_EVAL_CORPUS) are served on loopback by a few
publishers (127.0.0.1, 127.0.0.2, ...: one host each), each with RSS feeds of up to 100
entries and a robots.txt. Pages are served as they were fetched: `text/html` with no
charset, so decoding works from the page alone, as it must for many real servers.

Two commands are timed, each a fresh process started cold, in alternating pairs:

* pipeline: `ingest run --store <fresh dir> --feeds <file> --workers W` (the console script
  beside this interpreter, i.e. the environment `make demo` builds): polling, robots.txt,
  fetch, decode, extraction, the raw WARC archive (on, as by default), Parquet, the Delta
  commit. Wall time from spawn to exit, and to its first request (robots.txt).
* plain: a Python process that loads the same pages, already decoded, from one pickle and
  maps `trafilatura.bare_extraction(html, url=url, **ingest.extract.EXTRACT_OPTIONS)` (the
  engine's first pass, with metadata) over a W-process pool (fork start). Wall time from
  spawn to exit.

It prints the median of each over the pairs and the ratio plain / pipeline (1.0: the
pipeline is as fast as trafilatura alone), and the median of the pairs' own ratios ("by
pair", less swayed when the machine's speed drifts during the invocation), for the whole
corpus and for a sample (default
200 pages, where start-up weighs more), plus `ingest --help` wall time and CPU seconds of
each process tree. `--json PATH` writes every number. `--baseline-src DIR` adds a third
side to every round, the pipeline run with another commit's `src/`, and reports how much
faster this one is, round by round: the machine's speed drifts between invocations, so a
before/after is only fair within one.

    .venv/bin/python bench/bench_real_pages.py [--pairs 5] [--sample 200] [--sets corpus,sample]
    .venv/bin/python bench/bench_real_pages.py --sets corpus --baseline-src ../before/src
"""

from __future__ import annotations

import argparse
import compileall
import gzip
import json
import os
import pickle
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

FEED_SIZE = 100
WRITTEN = r"^newsflow_run_articles_written\{[^}]*\} (\S+)$"
TARGETS = {"corpus": 0.8, "sample": 0.75}


@dataclass(frozen=True)
class ServedPage:
    file: str
    host: int  # publisher number
    path: str
    body: bytes


def plain_main(pickle_path: str, workers: int) -> int:
    """The plain side, in its own process: load the pages, extract them in a pool."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import trafilatura  # noqa: F401  (imported before the pool forks: workers inherit it)

    with open(pickle_path, "rb") as fh:
        items, options = pickle.load(fh)
    global _OPTIONS
    _OPTIONS = options
    chunk = max(1, len(items) // (workers * 8))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        docs = sum(pool.map(_plain_one, items, chunksize=chunk))
    print(docs)
    return 0


_OPTIONS: dict[str, Any] = {}


def _plain_one(item: tuple[str, str]) -> int:
    import trafilatura

    html, url = item
    return int(trafilatura.bare_extraction(html, url=url, **_OPTIONS) is not None)


# --------------------------------------------------------------------------- the site


def load_pages(limit: int | None, seed: int = 7) -> list[tuple[str, bytes]]:
    """(file name, raw bytes) of the corpus pages; a seeded sample when `limit` is set."""
    from bench_extraction import corpus_dir, load_corpus

    root = corpus_dir()
    pages, _ = load_corpus(root)
    files = sorted({p.file for p in pages})
    if limit is not None and limit < len(files):
        files = sorted(random.Random(seed).sample(files, limit))
    return [(f, gzip.decompress((root / "pages" / f"{f}.gz").read_bytes())) for f in files]


def _rss(base: str, k: int, pages: list[ServedPage], now: datetime) -> bytes:
    items = []
    for i, page in enumerate(pages):
        when = format_datetime(now - timedelta(minutes=i + 1), usegmt=True)
        link = escape(base + page.path)
        items.append(
            f"<item><title>Story {escape(page.file)}</title><link>{link}</link>"
            f"<guid>{link}</guid><pubDate>{when}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Publisher feed {k}</title><link>{escape(base)}/</link><description>d"
        f"</description>{''.join(items)}</channel></rss>"
    ).encode()


class FirstRequest:
    """Records when robots.txt is first asked for: the run's first request."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.lock = threading.Lock()

    def handler(self, req: Any) -> None:
        from newsflow_dev.loopback import send_html

        with self.lock:
            if self.at is None:
                self.at = time.perf_counter()
        send_html(req, b"User-agent: *\nAllow: /\n", "text/plain")


def serve(stack: ExitStack, raw: list[tuple[str, bytes]], publishers: int, first: FirstRequest):
    """Start one loopback server per publisher; returns (feeds YAML, [(html, url)])."""
    from ingest.net import decode_html
    from newsflow_dev.loopback import FixtureServer, Route

    servers = [
        stack.enter_context(FixtureServer(f"127.0.0.{k + 1}").running()) for k in range(publishers)
    ]
    now = datetime.now(UTC).replace(microsecond=0)
    pages = [ServedPage(f, i % publishers, f"/news/{f}.html", b) for i, (f, b) in enumerate(raw)]
    feeds, items = [], []
    for k, server in enumerate(servers):
        server.add("/robots.txt", first.handler)
        mine = [p for p in pages if p.host == k]
        for page in mine:
            server.add(page.path, Route(page.body, content_type="text/html"))
            items.append((decode_html(page.body, "text/html"), server.url(page.path)))
        for n, start in enumerate(range(0, len(mine), FEED_SIZE)):
            path = f"/feeds/{n}.xml"
            chunk = mine[start : start + FEED_SIZE]
            server.add(path, Route(_rss(server.base_url, k, chunk, now), content_type="text/xml"))
            feeds.append({"name": f"pub{k}-{n}", "url": server.url(path)})
    listing = "".join(f"  - name: {f['name']}\n    url: {f['url']}\n" for f in feeds)
    return "feeds:\n" + listing, items


# --------------------------------------------------------------------------- measuring


def _ingest_command(env: dict[str, str] | None = None) -> list[str]:
    """The installed `ingest` program; for another checkout's engine (`PYTHONPATH` set),
    `python -m ingest.cli`, which every version has, whatever entry point the installed
    script calls."""
    script = Path(sys.executable).with_name("ingest")
    if script.exists() and not (env or {}).get("PYTHONPATH"):
        return [str(script)]
    return [sys.executable, "-m", "ingest.cli"]


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the whole process tree, stdout) of one command run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout


def run_pipeline(feeds_file: Path, workers: int, first: FirstRequest, env: dict[str, str]):
    with tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        metrics = Path(tmp) / "metrics.prom"
        cmd = [
            *_ingest_command(env), "run", "--store", str(Path(tmp) / "lake"),
            "--feeds", str(feeds_file), "--allow-network", "127.0.0.0/8",
            "--workers", str(workers), "--no-progress", "--metrics-file", str(metrics),
        ]  # fmt: skip
        first.at = None
        started = time.perf_counter()
        wall, cpu, _ = _timed(cmd, env)
        to_first = (first.at - started) if first.at else None
        written = re.search(WRITTEN, metrics.read_text(), re.M)
        return {
            "wall": wall,
            "cpu": cpu,
            "first_request": to_first,
            "articles": int(float(written.group(1))) if written else None,
        }


def run_plain(pickle_path: Path, workers: int, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--plain", str(pickle_path), "--workers", str(workers)]
    wall, cpu, out = _timed(cmd, env)
    return {"wall": wall, "cpu": cpu, "documents": int(out.split()[-1])}


def _compiled(src: str) -> Path:
    """Another checkout's src/ with its bytecode written, as an install leaves it: without,
    where PYTHONDONTWRITEBYTECODE is set, each of its processes would compile it again."""
    path = Path(src).resolve()
    if not compileall.compile_dir(path, quiet=1):
        raise SystemExit(f"cannot compile {path}")
    return path


def measure_set(name: str, raw: list[tuple[str, bytes]], args: argparse.Namespace) -> dict:
    from ingest.extract import EXTRACT_OPTIONS

    env = dict(os.environ)
    if args.engine_src:  # another checkout's engine, for before/after comparisons
        env["PYTHONPATH"] = str(_compiled(args.engine_src))
    # a before/after in one invocation: the machine's speed drifts between invocations
    base_env = dict(os.environ)
    if args.baseline_src:
        base_env["PYTHONPATH"] = str(_compiled(args.baseline_src))
    first = FirstRequest()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="newsflow-bench-") as tmp:
        feeds_yaml, items = serve(stack, raw, args.publishers, first)
        feeds_file = Path(tmp) / "feeds.yaml"
        feeds_file.write_text(feeds_yaml)
        pickle_path = Path(tmp) / "pages.pickle"
        with open(pickle_path, "wb") as fh:
            pickle.dump((items, EXTRACT_OPTIONS), fh)
        pipe, plain, base = [], [], []
        sides = ["pipeline", "plain"] + (["baseline"] if args.baseline_src else [])
        for pair in range(args.pairs):
            shift = pair % len(sides)  # each side takes each place in turn
            for side in sides[shift:] + sides[:shift]:
                if side == "pipeline":
                    pipe.append(run_pipeline(feeds_file, args.workers, first, env))
                elif side == "baseline":
                    base.append(run_pipeline(feeds_file, args.workers, first, base_env))
                else:
                    plain.append(run_plain(pickle_path, args.workers, env))
            print(
                f"  {name} pair {pair + 1}/{args.pairs}: pipeline {pipe[-1]['wall']:6.2f} s "
                f"({pipe[-1]['articles']} articles), plain {plain[-1]['wall']:6.2f} s"
                + (f", baseline {base[-1]['wall']:6.2f} s" if base else ""),
                file=sys.stderr,
            )
    pipe_wall = statistics.median(r["wall"] for r in pipe)
    plain_wall = statistics.median(r["wall"] for r in plain)
    firsts = [r["first_request"] for r in pipe if r["first_request"] is not None]
    baseline: dict[str, Any] = {}
    if base:
        base_wall = statistics.median(r["wall"] for r in base)
        baseline = {
            "baseline_src": args.baseline_src,
            "baseline_median_s": round(base_wall, 2),
            "baseline_ratio": round(plain_wall / base_wall, 3),
            "baseline_articles": [r["articles"] for r in base],
            "baseline_runs_s": [round(r["wall"], 2) for r in base],
            # per round, so a slow hour slows both: > 1 means the pipeline is faster
            "speedup_over_baseline": round(
                statistics.median(b["wall"] / p["wall"] for b, p in zip(base, pipe, strict=True)),
                3,
            ),
        }
    return {
        "pages": len(raw),
        "megabytes": round(sum(len(b) for _, b in raw) / 1e6, 1),
        "pipeline_median_s": round(pipe_wall, 2),
        "plain_median_s": round(plain_wall, 2),
        "ratio": round(plain_wall / pipe_wall, 3),
        # the same ratio taken pair by pair: the machine's speed drifts within an invocation
        # too, and a pair's two runs are seconds apart
        "ratio_of_pairs_median": round(
            statistics.median(q["wall"] / p["wall"] for p, q in zip(pipe, plain, strict=True)), 3
        ),
        "target": TARGETS.get(name),
        "pipeline_cpu_median_s": round(statistics.median(r["cpu"] for r in pipe), 2),
        "plain_cpu_median_s": round(statistics.median(r["cpu"] for r in plain), 2),
        "first_request_median_s": round(statistics.median(firsts), 3) if firsts else None,
        "articles": [r["articles"] for r in pipe],
        "plain_documents": [r["documents"] for r in plain],
        "pipeline_runs_s": [round(r["wall"], 2) for r in pipe],
        "plain_runs_s": [round(r["wall"], 2) for r in plain],
        **baseline,
    }


def help_seconds(repeat: int = 5) -> float:
    """Median wall time of `ingest --help`."""
    walls = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([*_ingest_command(), "--help"], capture_output=True, check=True)
        walls.append(time.perf_counter() - started)
    return round(statistics.median(walls), 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=5, help="alternating pairs per set")
    ap.add_argument("--sample", type=int, default=200, help="pages in the sample set")
    ap.add_argument("--sets", default="corpus,sample", help="corpus, sample or both")
    ap.add_argument("--publishers", type=int, default=4, help="loopback hosts")
    ap.add_argument("--workers", type=int, default=2, help="extraction processes per side")
    ap.add_argument("--json", help="write every number here")
    ap.add_argument(
        "--engine-src", help="run the pipeline with this src/ directory first on PYTHONPATH"
    )
    ap.add_argument(
        "--baseline-src",
        help="also time the pipeline with this src/ directory (another commit's engine) in "
        "every round: a before/after measured in one invocation",
    )
    ap.add_argument("--plain", help=argparse.SUPPRESS)  # the plain side's own process
    args = ap.parse_args(argv)
    if args.pairs < 1 or args.sample < 1 or not 1 <= args.publishers <= 250 or args.workers < 1:
        ap.error("--pairs, --sample and --workers must be >= 1, --publishers 1..250")
    unknown = set(args.sets.split(",")) - set(TARGETS)
    if unknown:
        ap.error(f"unknown sets: {sorted(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain:
        return plain_main(args.plain, args.workers)
    result: dict[str, Any] = {
        "config": {
            "pairs": args.pairs,
            "workers": args.workers,
            "publishers": args.publishers,
            "cpus": os.cpu_count(),
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
            "ingest": " ".join(_ingest_command()),
        },
        "ingest_help_s": help_seconds(),
    }
    for name in args.sets.split(","):
        raw = load_pages(None if name == "corpus" else args.sample)
        print(f"{name}: {len(raw)} pages", file=sys.stderr)
        result[name] = measure_set(name, raw, args)
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def print_table(result: dict[str, Any]) -> None:
    print(f"ingest --help: {result['ingest_help_s']:.3f} s (median of 5)")
    print(f"{'set':<8}{'pages':>6}{'MB':>7}{'pipeline s':>12}{'plain s':>10}{'ratio':>8}"
          f"{'by pair':>9}{'target':>8}{'1st req s':>11}{'pipe CPU':>10}"
          f"{'plain CPU':>10}")  # fmt: skip
    for name in TARGETS:
        row = result.get(name)
        if row is None:
            continue
        first = row["first_request_median_s"]
        print(
            f"{name:<8}{row['pages']:>6}{row['megabytes']:>7}{row['pipeline_median_s']:>12}"
            f"{row['plain_median_s']:>10}{row['ratio']:>8}{row['ratio_of_pairs_median']:>9}"
            f"{row['target']:>8}"
            f"{first if first is not None else '-':>11}{row['pipeline_cpu_median_s']:>10}"
            f"{row['plain_cpu_median_s']:>10}"
        )
        if "baseline_median_s" in row:
            print(
                f"{'':<8}baseline {row['baseline_src']}: {row['baseline_median_s']} s, ratio "
                f"{row['baseline_ratio']}; the pipeline is {row['speedup_over_baseline']}x "
                "as fast (median of rounds)"
            )


if __name__ == "__main__":
    sys.exit(main())
