"""One ingestion run, orchestration-agnostic: take the store's lease, crawl (poll → fetch
→ extract → stage), commit. `Run.execute` is `ingest run`; Airflow calls `Run.stage` per
shard and `commit_run` once."""

from __future__ import annotations

import time

from ingest.config import Feed, Settings
from ingest.lake import Lake
from ingest.lease import RunLease
from ingest.report import RunReport
from ingest.run.context import RunContext
from ingest.run.crawl import Crawl
from ingest.run.shards import commit_run, previous_report, shard_key
from ingest.store import Store
from ingest.websub.sync import sync_subscriptions


class Run:
    """One run, or one shard of a run: the feeds given are this shard's share."""

    def __init__(
        self,
        store: Store,
        feeds: list[Feed],
        settings: Settings,
        run_id: str | None = None,
        shard: int = 0,
        poll_all: bool = False,
        all_feeds: list[Feed] | None = None,
    ) -> None:
        """`all_feeds`: every shard's feeds (default `feeds`), so a shard leaves the inbox
        notifications of the others' sources alone."""
        self.ctx = RunContext.new(store, settings, run_id, shard)
        self.store = store
        self.run_id = self.ctx.run_id
        self.run_key = self.ctx.run_key
        self.lake = Lake(store)
        self.lease = RunLease(store, self.run_key, self.run_id, ttl=settings.lease_ttl)
        self.report = RunReport(
            run_id=self.run_id, store=store.uri, started_at=self.ctx.started.isoformat()
        )
        self.crawl = Crawl(self.ctx, feeds, self.report, poll_all=poll_all, all_feeds=all_feeds)

    def execute(self) -> RunReport:
        """Stage and commit in one go (the `ingest run` command)."""
        try:
            if self.stage(hold_lease=True) is None:
                return previous_report(self.store, self.run_key)
            report = commit_run(self.store, self.run_id, shards=1)
        finally:
            self.lease.release()  # also when the run failed: the next one need not wait
        sync_subscriptions(self.store, self.crawl.feeds_everywhere, self.ctx.settings)
        return report

    def stage(self, hold_lease: bool = False) -> RunReport | None:
        """Fetch, extract and write this shard's parts to staging; None if the run is
        already committed. Nothing becomes visible until `commit_run`.

        The run lease is taken here and released by the commit; a second run on the store
        waits for it or stops with StoreBusy. A shard stops renewing it when it is done
        (`hold_lease` keeps renewing it through the caller's own commit, and binds it to this
        process: if it dies, the next run on this host need not wait for the expiry)."""
        t0 = time.monotonic()
        self.store.check()
        self.lake.recover()
        if self.lake.committed_run(self.run_key) is not None:
            return None
        self.lease.acquire(wait=self.ctx.settings.lease_wait, process_bound=hold_lease)
        try:
            request = self.crawl.run(self.lake.keys)
            self.report.seconds = round(time.monotonic() - t0, 3)
            request.report = self.report.to_dict()
            self.store.put_bytes(shard_key(self.run_key, self.ctx.shard), request.to_json())
        finally:
            if not hold_lease:
                self.lease.stop_heartbeat()  # other shards of this run may still hold it
        return self.report


def run(
    store: Store,
    feeds: list[Feed],
    settings: Settings,
    run_id: str | None = None,
    poll_all: bool = False,
) -> RunReport:
    return Run(store, feeds, settings, run_id, poll_all=poll_all).execute()
