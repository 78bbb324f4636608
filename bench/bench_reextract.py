"""Re-extraction throughput: `ingest reextract` against the same extraction in a plain
process pool over the same pages, read from the same WARC records.

Ingests N benchmark pages (bench_pipeline's pages, with the raw archive on) into a local
store, reads every article's WARC record once (untimed) for the baselines, then times:

* `extract_page` (what reextract runs per page) mapped over a warm process pool of W
  workers: the ceiling for re-extraction;
* plain `trafilatura.bare_extraction` the same way, for reference;
* `reextract(store, workers=W)`: ranged reads of the records, decoding, extraction in the
  engine's pool, normalization and the MERGE of the changed rows (the rules version is
  bumped first, so every row is selected and rewritten).

    .venv/bin/python bench/bench_reextract.py --pages 600
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import Server, build_site  # noqa: E402

from ingest import extract  # noqa: E402
from ingest.config import Feed, Settings  # noqa: E402
from ingest.lake import read_committed  # noqa: E402
from ingest.net import decode_html  # noqa: E402
from ingest.reextract import reextract  # noqa: E402
from ingest.run import run  # noqa: E402
from ingest.store import LocalStore  # noqa: E402
from ingest.warc import read_record  # noqa: E402


def _engine(item: tuple[str, str]) -> int:
    return len(extract.extract_page(item[0], item[1])["text"])


def _bare(item: tuple[str, str]) -> int:
    import trafilatura

    doc = trafilatura.bare_extraction(item[0], url=item[1], include_comments=False,
                                      include_tables=True)  # fmt: skip
    return len(doc.text or "") if doc else 0


def pool_rate(fn: Any, items: list[tuple[str, str]], workers: int) -> float:
    """Pages/s of `fn` over a warm pool (workers started and warmed before the clock)."""
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(fn, items[: workers * 3]))
        t0 = time.perf_counter()
        list(pool.map(fn, items, chunksize=max(1, len(items) // (workers * 16))))
        return len(items) / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=600)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--chrome-kb", type=int, default=100)
    args = ap.parse_args()
    store = LocalStore(Path(tempfile.mkdtemp(prefix="bench-reextract-")) / "lake")
    with Server() as server:
        bench = build_site(server.base_url, args.pages, 100, args.chrome_kb)
        server.routes.update(bench.routes)
        feeds = [Feed(f"bench-{k:03d}", url) for k, url in enumerate(bench.feed_urls)]
        settings = Settings.from_env({}, allow_networks=["127.0.0.0/8"], workers=args.workers,
                                     progress=False, per_host_concurrency=8)  # fmt: skip
        report = run(store, feeds, settings)
    rows = read_committed(store).to_pylist()
    items = []
    for row in rows:
        record, _ = read_record(
            store.get_range(row["warc_file"], row["warc_offset"], row["warc_length"])
        )
        items.append((decode_html(record.body, record.headers.get("content-type", "")),
                      record.final_url))  # fmt: skip
    print(f"{len(rows)} articles ingested, {report.raw_bytes / 2**20:.1f} MB of WARC; "
          f"workers={args.workers}", flush=True)  # fmt: skip
    engine = pool_rate(_engine, items, args.workers)
    bare = pool_rate(_bare, items, args.workers)
    extract.RULES_VERSION += 1  # every row is selected and rewritten
    t0 = time.perf_counter()
    result = reextract(
        store, older_than=extract.RULES_VERSION, workers=args.workers, start_method="fork"
    )  # fork: the workers see the bumped version
    seconds = time.perf_counter() - t0
    rate = result.reextracted / seconds
    print(result.summary())
    print(f"{'extract_page, warm pool':<38}{engine:8.1f} pages/s")
    print(f"{'trafilatura bare_extraction, warm pool':<38}{bare:8.1f} pages/s")
    print(f"{'reextract (end to end)':<38}{rate:8.1f} pages/s")
    print(f"reextract / extract_page pool: {rate / engine:.2f} (target 0.9); "
          f"reextract / plain trafilatura pool: {rate / bare:.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
