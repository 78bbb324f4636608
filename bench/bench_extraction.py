"""Benchmark: extraction quality of the engine against plain trafilatura on real pages.

The corpus is trafilatura's evaluation set (945 real pages with snippets that a good
extraction must and must not contain), kept beside the repository at
`../shared/corpora/trafilatura-eval/` (override with NEWSFLOW_EVAL_CORPUS). Each page is
decoded as the engine decodes a fetched page (`ingest.net.decode_html`, no
content-type header, so the page's own charset or detection), then extracted by:

* engine: `ingest.extract.extract_page`, the function the pipeline calls;
* default: `trafilatura.bare_extraction(include_comments=False, include_tables=True)`;
* precision: the same with `favor_precision=True`;
* single-pass: `bare_extraction(**ingest.extract.EXTRACT_OPTIONS)` alone, i.e. the engine
  before its fallback rules (precision pass with metadata): the cost reference.

The three trafilatura configurations run as trafilatura is released
(`ingest.trafilatura_speedups.as_shipped`); the engine runs with its speed-ups, which
change no result.

Scoring is the corpus's usual one: per snippet, a `with` snippet found in the body is a
true positive (else a false negative), a `without` snippet found is a false positive
(else a true negative); whitespace-normalized substring matching; precision, recall and
F1 over all snippets. A page whose extraction fails counts all its snippets as missing.

Prints P/R/F1 overall and per page language, pages/s of each extractor over a warm process
pool, how often the engine took its fallback or JSON-LD path, and the pages where the
engine loses most against trafilatura's default (to find failures). `--json PATH` writes
every number. `tests/system/test_extraction_quality.py` runs it (engine only) as the CI gate.

    .venv/bin/python bench/bench_extraction.py [--workers N] [--json PATH] [--worst 25]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CORPUS_ENV = "NEWSFLOW_EVAL_CORPUS"
EXTRACTORS = ("engine", "default", "precision", "single-pass")
MIN_LANGUAGE_PAGES = 20  # smaller language groups are reported as "other"


def corpus_dir() -> Path:
    """The corpus: $NEWSFLOW_EVAL_CORPUS, else ../shared/corpora/trafilatura-eval/ beside
    the repository."""
    override = os.environ.get(CORPUS_ENV)
    if override:
        return Path(override)
    return REPO.parent / "shared" / "corpora" / "trafilatura-eval"


@dataclass(frozen=True)
class Page:
    url: str
    file: str
    with_: tuple[str, ...]
    without: tuple[str, ...]


def load_corpus(root: Path) -> tuple[list[Page], int]:
    """The annotated pages whose file is present, and how many entries were skipped."""
    data = json.loads((root / "evaldata.json").read_text("utf-8"))
    pages, missing = [], 0
    for url, item in data.items():
        if not (root / "pages" / f"{item['file']}.gz").is_file():
            missing += 1
            continue
        pages.append(Page(url, item["file"], tuple(item["with"]), tuple(item["without"])))
    return pages, missing


def normalize(text: str) -> str:
    return " ".join(text.split())


def score(text: str | None, page: Page) -> tuple[int, int, int, int]:
    """(TP, FN, FP, TN) of one page's extracted body."""
    body = normalize(text) if text else None
    found = [body is not None and normalize(s) in body for s in page.with_]
    leaked = [body is not None and normalize(s) in body for s in page.without]
    return sum(found), len(found) - sum(found), sum(leaked), len(leaked) - sum(leaked)


def prf(counts: Iterable[tuple[int, int, int, int]]) -> dict[str, float]:
    tp = fn = fp = tn = 0
    for a, b, c, d in counts:
        tp, fn, fp, tn = tp + a, fn + b, fp + c, tn + d
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fn": fn, "fp": fp}


# --------------------------------------------------------------------------- the workers


def _read_html(root: str, file: str) -> str:
    from ingest.net import decode_html

    raw = gzip.decompress((Path(root) / "pages" / f"{file}.gz").read_bytes())
    return decode_html(raw, "")


def extract_one(args: tuple[str, str, str, str]) -> dict[str, Any]:
    """Extract one page with one extractor (runs in a worker process)."""
    root, extractor, url, file = args
    import trafilatura

    from ingest.extract import EXTRACT_OPTIONS, ExtractError, extract_page, page_language
    from ingest.trafilatura_speedups import as_shipped

    html = _read_html(root, file)
    out: dict[str, Any] = {"file": file, "language": page_language(html), "path": None}
    cpu = time.process_time()
    if extractor == "engine":
        try:
            got = extract_page(html, url)
            out["text"], out["path"] = got["text"], got["extraction"]
        except ExtractError as exc:
            out["text"], out["path"] = None, f"error:{exc.reason}"
    else:
        options: dict[str, Any] = {"include_comments": False, "include_tables": True}
        if extractor == "precision":
            options["favor_precision"] = True
        elif extractor == "single-pass":
            options = EXTRACT_OPTIONS
        with as_shipped():  # trafilatura as released, not as the engine runs it
            doc = trafilatura.bare_extraction(html, url=url, **options)
        out["text"] = doc.text if doc is not None else None
    out["cpu"] = time.process_time() - cpu
    return out


def _warm_up() -> None:
    import trafilatura  # noqa: F401

    import ingest.extract  # noqa: F401


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A warm fork pool: workers inherit the imports, no pickling of module paths."""
    _warm_up()
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    list(pool.map(_noop, range(workers * 2)))
    return pool


def _noop(_: int) -> None:
    return None


@dataclass
class Run:
    extractor: str
    seconds: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # by URL

    @property
    def pages_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds else 0.0


def run_extractor(
    pool: ProcessPoolExecutor, root: Path, pages: list[Page], extractor: str, workers: int
) -> Run:
    """Map one extractor over all pages; wall time of the map is the speed measure. A few
    untimed pages first, so lazy initialization in the workers is not billed to it."""
    chunksize = max(1, len(pages) // (workers * 16))
    tasks = [(str(root), extractor, p.url, p.file) for p in pages]
    list(pool.map(extract_one, tasks[: workers * 4], chunksize=1))
    start = time.perf_counter()
    outputs = list(pool.map(extract_one, tasks, chunksize=chunksize))
    seconds = time.perf_counter() - start
    return Run(extractor, seconds, {p.url: out for p, out in zip(pages, outputs, strict=True)})


def language_group(language: str | None, common: set[str]) -> str:
    primary = (language or "unknown").split("-")[0]
    return primary if primary in common or primary == "unknown" else "other"


def summarize(pages: list[Page], runs: dict[str, Run]) -> dict[str, Any]:
    """Every number the report prints, as plain data (for --json and for the CI gate)."""
    first = next(iter(runs.values()))
    languages = Counter(
        (first.results[p.url]["language"] or "unknown").split("-")[0] for p in pages
    )
    common = {lang for lang, n in languages.items() if n >= MIN_LANGUAGE_PAGES}
    summary: dict[str, Any] = {"pages": len(pages), "extractors": {}}
    for name, run in runs.items():
        counts = {p.url: score(run.results[p.url]["text"], p) for p in pages}
        by_language: dict[str, list[tuple[int, int, int, int]]] = {}
        for p in pages:
            group = language_group(run.results[p.url]["language"], common)
            by_language.setdefault(group, []).append(counts[p.url])
        entry: dict[str, Any] = {
            **prf(counts.values()),
            "seconds": run.seconds,
            "pages_per_second": run.pages_per_second,
            "cpu_ms_per_page": 1000 * sum(r["cpu"] for r in run.results.values()) / len(pages),
            "by_language": {
                lang: {**prf(c), "pages": len(c)}
                for lang, c in sorted(by_language.items(), key=lambda kv: -len(kv[1]))
            },
            "per_page": {p.file: counts[p.url] for p in pages},
        }
        if name == "engine":
            entry["paths"] = dict(Counter(run.results[p.url]["path"] for p in pages))
        summary["extractors"][name] = entry
    return summary


def worst_pages(summary: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Pages where the engine's (TP - FP) is furthest below trafilatura's default."""
    engine = summary["extractors"]["engine"]["per_page"]
    default = summary["extractors"]["default"]["per_page"]
    rows = []
    for file, e in engine.items():
        d = default[file]
        delta = (e[0] - e[2]) - (d[0] - d[2])
        if delta < 0:
            rows.append({"file": file, "delta": delta, "engine": e, "default": d})
    rows.sort(key=lambda r: (r["delta"], r["file"]))
    return rows[:limit]


def evaluate(
    extractors: Iterable[str] = EXTRACTORS, workers: int | None = None, root: Path | None = None
) -> dict[str, Any]:
    """Load the corpus, run the extractors on a warm pool, and summarize."""
    root = root or corpus_dir()
    pages, missing = load_corpus(root)
    workers = workers or os.cpu_count() or 1
    with make_pool(workers) as pool:
        runs = {name: run_extractor(pool, root, pages, name, workers) for name in extractors}
    summary = summarize(pages, runs)
    summary["missing_files"] = missing
    summary["workers"] = workers
    summary["engine_path_by_file"] = {
        p.file: runs["engine"].results[p.url]["path"] for p in pages if "engine" in runs
    }
    return summary


# --------------------------------------------------------------------------- the report


def print_report(summary: dict[str, Any], worst: int) -> None:
    ex = summary["extractors"]
    print(
        f"{summary['pages']} pages ({summary['missing_files']} entries without a file "
        f"skipped), {summary['workers']} workers"
    )
    print(
        f"\n{'extractor':<12} {'P':>6} {'R':>6} {'F1':>6} {'TP':>5} {'FP':>4} "
        f"{'pages/s':>8} {'CPU ms/page':>12}"
    )
    for name, e in ex.items():
        print(
            f"{name:<12} {e['precision']:6.3f} {e['recall']:6.3f} {e['f1']:6.3f} "
            f"{e['tp']:5d} {e['fp']:4d} {e['pages_per_second']:8.1f} {e['cpu_ms_per_page']:12.1f}"
        )
    names = list(ex)
    print(f"\nF1 by page language (html lang; groups under {MIN_LANGUAGE_PAGES} pages: other)")
    print(f"{'language':<9} {'pages':>5} " + " ".join(f"{n:>10}" for n in names))
    for lang, row in ex[names[0]]["by_language"].items():
        cells = " ".join(f"{ex[n]['by_language'][lang]['f1']:10.3f}" for n in names)
        print(f"{lang:<9} {row['pages']:5d} {cells}")
    if "engine" in ex:
        paths = ex["engine"]["paths"]
        total = sum(paths.values())
        print(
            "\nengine paths: " + ", ".join(f"{k} {v} ({v / total:.1%})" for k, v in paths.items())
        )
    if "engine" in ex and "default" in ex and worst:
        rows = worst_pages(summary, worst)
        print(f"\npages where the engine loses most vs default: {len(rows)} listed")
        print("  (TP-FP) delta, file, engine and default as (TP, FN, FP, TN), engine path")
        for r in rows:
            path = summary["engine_path_by_file"].get(r["file"])
            print(f"  {r['delta']:+d}  {r['file']:<55} {r['engine']} {r['default']} {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--extractors", default=",".join(EXTRACTORS))
    parser.add_argument("--worst", type=int, default=25, help="pages to list (0: none)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)
    root = corpus_dir()
    if not (root / "evaldata.json").is_file():
        print(f"corpus not found at {root} (set {CORPUS_ENV})", file=sys.stderr)
        return 2
    extractors = [e for e in args.extractors.split(",") if e]
    summary = evaluate(extractors, args.workers, root)
    print_report(summary, args.worst)
    if args.json:
        data = dict(summary)
        data["worst"] = (
            worst_pages(summary, args.worst) if {"engine", "default"} <= set(extractors) else []
        )
        args.json.write_text(json.dumps(data, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    raise SystemExit(main())
