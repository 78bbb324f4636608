"""A run split into shards (Airflow maps one task per shard): which feeds go where, where
each shard's commit request waits, and the one commit that makes them all visible."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from ingest import ids
from ingest.config import Feed
from ingest.lake import STAGING, CommitRequest, Lake
from ingest.lease import release_if_held
from ingest.report import RunReport
from ingest.store import Store


def shard_key(run_key: str, shard: int) -> str:
    return f"{STAGING}{run_key}/shards/{shard:04d}.json"


def split_feeds(feeds: list[Feed], shards: int) -> list[list[Feed]]:
    """Feeds of one publisher (host) stay in one shard: the sections of a site link the
    same articles, and one shard fetches such an article once where two shards would both
    fetch it. Hosts go to the least loaded shard, biggest first; deterministic, so a
    retried shard gets the same feeds. Fewer shards than asked when there are fewer hosts."""
    by_host: dict[str, list[Feed]] = {}
    for feed in sorted(feeds, key=lambda f: f.name):
        by_host.setdefault(_publisher(feed.url), []).append(feed)
    out: list[list[Feed]] = [[] for _ in range(max(1, shards))]
    for _host, group in sorted(by_host.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        smallest = min(range(len(out)), key=lambda i: (len(out[i]), i))
        out[smallest].extend(group)
    return [sorted(shard, key=lambda f: f.name) for shard in out if shard]


def _publisher(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _merged_sources(requests: list[CommitRequest]) -> dict[str, list[list[str]]]:
    merged: dict[str, set[tuple[str, str]]] = {}
    for request in requests:
        for aid, feeds in request.sources.items():
            merged.setdefault(aid, set()).update((name, url) for name, url in feeds)
    return {aid: sorted([n, u] for n, u in feeds) for aid, feeds in merged.items()}


def previous_report(store: Store, run_key: str) -> RunReport:
    """The report of a committed run, from its own commit's metadata."""
    lake = Lake(store)
    version = lake.committed_run(run_key)
    if version is None:
        raise RuntimeError(f"run {run_key} is not committed")
    report = RunReport.from_dict(lake.result_of(version).report)
    report.already_committed = True
    return report


def commit_run(store: Store, run_id: str, shards: int) -> RunReport:
    """Make every shard's staged parts visible in one commit (idempotent per run id)."""
    t0 = time.monotonic()
    lake = Lake(store)
    key = ids.run_key(run_id)
    lake.recover()
    if lake.committed_run(key) is not None:
        release_if_held(store, key)
        return previous_report(store, key)
    requests = []
    for shard in range(shards):
        raw = store.get_bytes(shard_key(key, shard))
        if raw is None:
            raise RuntimeError(f"shard {shard} of run {run_id} staged nothing: run it first")
        requests.append(CommitRequest.from_json(raw))
    report = RunReport.from_dict(requests[0].report)
    for other in requests[1:]:
        report.merge(RunReport.from_dict(other.report))
    # an article two shards both staged is a duplicate within this run, not a row some
    # earlier run committed: counted as such, and committed once
    article_ids = [a for r in requests for a in r.article_ids]
    unique_ids = list(dict.fromkeys(article_ids))
    if len(unique_ids) < len(article_ids):
        report.skips["duplicate_in_run"] += len(article_ids) - len(unique_ids)
    report.seconds = round(report.seconds + time.monotonic() - t0, 3)
    merged = CommitRequest(
        run_id=run_id,
        run_key=key,
        parts=[p for r in requests for p in r.parts],
        article_ids=unique_ids,
        feed_states={k: v for r in requests for k, v in r.feed_states.items()},
        report=report.to_dict(),
        index_dates=sorted({d for r in requests for d in r.index_dates}),
        published_at={k: v for r in requests for k, v in r.published_at.items()},
        sources=_merged_sources(requests),
        update_targets={k: v for r in requests for k, v in r.update_targets.items()},
        inbox=sorted({k for r in requests for k in r.inbox}),
        pushed=sorted({a for r in requests for a in r.pushed}),
    )
    result = lake.commit(merged)
    release_if_held(store, key)
    final = RunReport.from_dict(result.report)
    final.already_committed = result.already_committed
    return final
