"""A big index day: time, peak memory and output sizes of building one day of N stories.

Commits N synthetic articles (about 450 words each, a third without a summary so the lead
comes from the text, 5% syndicated copies) published on one day into a local store,
untimed. Then a fresh process builds that day's index (`index.build(store, [day])`), so
its peak RSS is the build's own plus the imports (printed separately), and the sizes of
the day's files are listed.

    .venv/bin/python bench/bench_index_day.py --stories 10000
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ingest import ids, index, schema  # noqa: E402
from ingest.extract import fingerprints  # noqa: E402
from ingest.lake import CommitRequest, Lake, PartWriter  # noqa: E402
from ingest.report import RunReport  # noqa: E402
from ingest.store import LocalStore  # noqa: E402

DAY = date(2025, 12, 18)
_LETTERS = random.Random(1)
# a vocabulary large enough that random texts are not near duplicates of each other
WORDS = ["".join(_LETTERS.choices("etaoinshrdlucmfwyp", k=_LETTERS.randint(3, 10)))
         for _ in range(20_000)]  # fmt: skip


def articles(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    start = datetime.combine(DAY, datetime.min.time(), UTC)
    rows: list[dict] = []
    for n in range(count):
        source = f"site{n % 40}"
        url = f"https://{source}.example/story/{n}"
        if n % 20 == 19 and rows:  # a syndicated copy of an earlier story
            text = rows[rng.randrange(len(rows))]["text"]
        else:
            sentences = [" ".join(rng.choices(WORDS, k=15)) + "." for _ in range(30)]
            text = f"Story {n}\n" + "\n".join(sentences)
        sha, sim = fingerprints(text)
        rows.append({
            "article_id": ids.article_id(url), "url": url, "final_url": url,
            "canonical_url": url, "source": source, "feed_url": f"https://{source}.example/f",
            "authors": [f"Author {n % 300}"], "title": f"Story {n}: " + " ".join(
                rng.choices(WORDS, k=8)),
            "published_at": start + timedelta(seconds=rng.randrange(86_400)),
            "published_at_source": "page", "updated_at": None,
            "fetched_at": start + timedelta(days=1), "language": "en",
            "site_name": f"The {source.title()} Times",
            "summary": None if n % 3 == 0 else " ".join(rng.choices(WORDS, k=40)),
            "text": text, "word_count": len(text.split()), "categories": ["news"],
            "tags": ["city", "port"], "image_url": None, "content_sha256": sha,
            "simhash": sim, "http_status": 200, "run_id": "bench", "schema_version": 1,
        })  # fmt: skip
    return rows


def setup(root: Path, count: int) -> LocalStore:
    store = LocalStore(root)
    rows = articles(count)
    key = ids.run_key("bench")
    writer = PartWriter(store, schema.article(), "articles", key, DAY.isoformat(), 5_000)
    for row in rows:
        writer.add(row)
    Lake(store).commit(
        CommitRequest(
            run_id="bench", run_key=key, parts=writer.close(),
            article_ids=[r["article_id"] for r in rows], feed_states={},
            report=RunReport("bench", store.uri, f"{DAY}T00:00:00+00:00").to_dict(),
            index_dates=[DAY.isoformat()],
        )
    )  # fmt: skip
    return store


def peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux ru_maxrss carries over the
    peak of the process that forked us (the setup, here) across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build_in_this_process(root: str) -> None:
    """The measured part; prints one JSON line."""
    imported = peak_rss_kb()
    t0 = time.perf_counter()
    (result,) = index.build(LocalStore(root), [DAY])
    seconds = time.perf_counter() - t0
    peak = peak_rss_kb()
    print(json.dumps({"seconds": seconds, "imports_kb": imported, "peak_kb": peak,
                      "stories": result.stories}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stories", type=int, default=10_000)
    parser.add_argument("--build", metavar="STORE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build_in_this_process(args.build)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        measure(work / "lake", args.stories)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(root: Path, stories: int) -> None:
    t0 = time.perf_counter()
    setup(root, stories)
    print(f"setup: {stories} articles committed in {time.perf_counter() - t0:.1f} s")
    done = subprocess.run(
        [sys.executable, __file__, "--build", str(root)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    got = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"build of one day, {got['stories']} stories: {got['seconds']:.1f} s")
    print(f"peak RSS {got['peak_kb'] / 1024:.0f} MB (after imports: "
          f"{got['imports_kb'] / 1024:.0f} MB)")  # fmt: skip
    folder = root / index.index_prefix(DAY)
    sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    for name in index.NAMES:
        print(f"  {name:<28}{sizes[name] / 2**20:8.2f} MB")
    further = [size for name, size in sizes.items() if name not in index.NAMES]
    if further:
        print(f"  {len(further)} further pages, the largest {max(further) / 2**20:.2f} MB")
    print(f"  all {len(sizes)} files: {sum(sizes.values()) / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
