"""Benchmark: publication to committed-and-readable, push against polling, under the real
scheduler.

Two publishers on loopback publish a story each at the same random moments over a few
minutes: `push-site`, whose feed announces a WebSub hub (the test hub of
newsflow_dev.websub_hub, which delivers signed fat pings to the receiver), and
`poll-site`, which has none. Everything is the real thing: `ingest receive` with its Redis
doorbell, and Airflow's scheduler, triggerer, dag-processor and API server as separate
processes (LocalExecutor) running `news_push` (started by the doorbell's asset events) and
`news_ingest` (on a cron schedule, both sites in its feeds file; polling the push site
too, as in production, so the two DAGs contend for the store as they would).

For every story it measures the seconds from the moment it was published (added to the
feed, and for the push site announced to the hub) to the moment its row could be read
from the articles table, and prints p50 / p95 / max per site, how each push-site story
arrived (push or poll), and whether any story is missing or duplicated.

    .venv/bin/python bench/bench_freshness.py [--stories 20] [--minutes 4] [--poll-cron CRON]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from newsflow_dev.loopback import FixtureServer
from newsflow_dev.push_stack import PushStack, committed
from newsflow_dev.services import redis_server
from newsflow_dev.websub_hub import LocalHub, Site


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stories", type=int, default=20, help="stories per site (20)")
    ap.add_argument("--minutes", type=float, default=4.0, help="publishing window (4)")
    ap.add_argument("--poll-cron", default="*/2 * * * *", help="news_ingest's schedule")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path, help="write the numbers here")
    return ap.parse_args(argv)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "p50": round(percentile(values, 0.5), 1) if values else None,
        "p95": round(percentile(values, 0.95), 1) if values else None,
        "max": round(max(values), 1) if values else None,
        "mean": round(statistics.fmean(values), 1) if values else None,
    }


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    hub = LocalHub()
    with (
        redis_server() as redis_url,
        hub.running(),
        FixtureServer("127.0.0.3").running() as push_srv,
        FixtureServer("127.0.0.4").running() as poll_srv,
    ):
        push_site, poll_site = Site(push_srv, hub), Site(poll_srv, None)
        push_site.add_story(0)
        poll_site.add_story(0)
        store_uri = f"file://{tmp / 'lake'}"
        feeds = tmp / "feeds.yaml"
        feeds.write_text(
            f"feeds:\n  - name: push-site\n    url: {push_site.topic}\n"
            f"  - name: poll-site\n    url: {poll_site.topic}\n"
        )
        with PushStack(tmp, store_uri, feeds, redis_url,
                       NEWSFLOW_INGEST_SCHEDULE=args.poll_cron) as stack:  # fmt: skip
            stack.first_run()
            hub.settle()
            if not hub.active(push_site.topic):
                raise SystemExit(f"the push site was not subscribed: {hub.verifications}")
            stack.start_airflow(["news_push", "news_ingest"])
            window = args.minutes * 60
            moments = sorted(rng.uniform(0, window) for _ in range(args.stories))
            published: dict[str, tuple[str, float]] = {}  # url -> (site, when)
            seen: dict[str, float] = {}  # url -> when its row was first readable
            arrivals: dict[str, str] = {}
            done = threading.Event()

            def watch() -> None:
                """Read the table once a second, from before the first story on."""
                while not done.is_set():
                    rows = committed(store_uri)
                    stamp = time.monotonic()
                    for url in list(published):
                        if url in rows and url not in seen:
                            seen[url] = stamp
                            arrivals[url] = rows[url]["arrival"]
                    done.wait(1.0)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            start = time.monotonic()
            for n, at in enumerate(moments, start=1):
                time.sleep(max(0.0, start + at - time.monotonic()))
                url = push_site.add_story(n)
                now = time.monotonic()
                published[url] = ("push", now)
                hub.publish(push_site.topic, push_site.feed())
                published[poll_site.add_story(n)] = ("poll", time.monotonic())
                print(f"  published story {n} at {now - start:6.1f} s", file=sys.stderr)
            deadline = time.monotonic() + 600
            while len(seen) < len(published) and time.monotonic() < deadline:
                time.sleep(1)
            done.set()
            watcher.join(10)
            rows = committed(store_uri)
    latency = {site: [seen[u] - t for u, (s, t) in published.items() if s == site and u in seen]
               for site in ("push", "poll")}  # fmt: skip
    push_arrivals = [arrivals[u] for u, (s, _) in published.items() if s == "push" and u in seen]
    return {
        "stories_per_site": args.stories,
        "window_minutes": args.minutes,
        "poll_cron": args.poll_cron,
        "push_site": summary(latency["push"]),
        "poll_site": summary(latency["poll"]),
        "push_site_arrivals": {a: push_arrivals.count(a) for a in sorted(set(push_arrivals))},
        "missing": sorted(u for u in published if u not in seen),
        "rows": len(rows),
        "expected_rows": len(published) + 2,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="newsflow-freshness-") as tmp:
        result = run(args, Path(tmp))
    print(f"{'site':<10} {'count':>5} {'p50 s':>7} {'p95 s':>7} {'max s':>7}")
    for site in ("push_site", "poll_site"):
        s = result[site]
        print(f"{site:<10} {s['count']:>5} {s['p50']!s:>7} {s['p95']!s:>7} {s['max']!s:>7}")
    print(f"push-site arrivals: {result['push_site_arrivals']}; missing: {result['missing']}; "
          f"rows {result['rows']} of {result['expected_rows']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = not result["missing"] and result["rows"] == result["expected_rows"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
