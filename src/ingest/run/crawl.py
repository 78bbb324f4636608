"""The work of one shard: poll the due sources, fetch and extract their new pages, write
the parts, and say what the commit must record.

Threads fetch (I/O), a process pool extracts (CPU), and fetching overlaps extraction
because every fetch thread hands its page to the pool and the next fetch starts while
the pool works. Rows stream into bounded Parquet parts; nothing becomes visible until
the commit (see ingest.lake).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime

from ingest import polling
from ingest.config import Feed
from ingest.extractor_pool import ExtractorPool
from ingest.lake import CommitRequest
from ingest.lake.parts import preload_in_background
from ingest.net import HttpClient
from ingest.normalize import reject_row
from ingest.report import RunReport
from ingest.run.context import RunContext
from ingest.run.ledger import Ledger, SourceRun
from ingest.run.page import PageStage
from ingest.run.progress import Progress
from ingest.run.select import CommittedKeys, select
from ingest.run.sinks import Sinks
from ingest.sources import PollResult, parse_source, poll
from ingest.state import as_dict, load_feed_states, state_for

log = logging.getLogger(__name__)

MAX_POLL_THREADS = 8


class Crawl:
    def __init__(
        self, ctx: RunContext, feeds: list[Feed], report: RunReport, poll_all: bool = False
    ) -> None:
        self.ctx = ctx
        self.feeds = feeds
        self.report = report
        self.poll_all = poll_all  # poll every enabled source, due or not

    def run(self, committed: CommittedKeys) -> CommitRequest:
        settings = self.ctx.settings
        client = HttpClient(settings)
        extractor = ExtractorPool(
            settings.workers, settings.extract_timeout, settings.mp_start_method
        )
        try:  # the pool is shut down on every way out: a live one at exit can crash it
            extractor.start()  # before any fetch or poll thread exists
            if settings.mp_start_method != "fork":  # a worker may be forked again later
                preload_in_background()
            return self._crawl(committed, client, extractor)
        finally:
            extractor.close()
            client.close()

    def _crawl(
        self, committed: CommittedKeys, client: HttpClient, extractor: ExtractorPool
    ) -> CommitRequest:
        """Poll the due sources and fetch what they list, pages as soon as their source is
        read; then what to commit."""
        sinks = Sinks(self.ctx)
        ledger = self._ledger()
        pages = PageStage(self.ctx, client, extractor, sinks, ledger, committed)
        due = self._due(ledger)
        self.report.feeds_total = len(self.feeds)
        self.report.feeds_disabled = sum(1 for f in self.feeds if not f.enabled)
        self.report.feeds_not_due = sum(f.enabled for f in self.feeds) - len(due)
        self._poll_and_fetch(due, pages, sinks, ledger, client, extractor)
        return self._commit_request(ledger, sinks, client)

    def _ledger(self) -> Ledger:
        states = load_feed_states(self.ctx.store)
        ledger = Ledger()
        for feed in self.feeds:
            state = state_for(states, feed.name, feed.url)
            ledger.sources[feed.name] = SourceRun(
                feed, state, checked_since=state.checked_at or state.last_success_at
            )
        return ledger

    def _poll_and_fetch(
        self,
        due: list[SourceRun],
        pages: PageStage,
        sinks: Sinks,
        ledger: Ledger,
        client: HttpClient,
        extractor: ExtractorPool,
    ) -> None:
        settings = self.ctx.settings
        progress = Progress(settings.progress)

        def parse(body: bytes, feed: Feed, url: str, content_type: str) -> PollResult:
            return extractor.call(parse_source, body, feed, url, content_type, what=feed.url)

        def page(entry_key: tuple) -> None:
            try:
                pages(*entry_key)
            finally:
                progress.step()

        fetchers = ThreadPoolExecutor(settings.fetch_concurrency, "fetch")
        pollers = ThreadPoolExecutor(min(MAX_POLL_THREADS, max(1, len(self.feeds))), "poll")
        try:
            polls = {pollers.submit(poll, client, s.feed, s.state, parse): s for s in due}
            page_futures: list[Future[None]] = []
            for future in as_completed(polls):
                source = polls[future]
                source.poll = future.result()
                self._account_poll(source, sinks, ledger)
                todo = select(
                    source,
                    source.poll.entries,
                    pages.committed,
                    ledger,
                    started=self.ctx.started,
                    max_rechecks=settings.max_rechecks,
                )
                progress.add_total(len(todo))
                page_futures += [fetchers.submit(page, item) for item in todo]
            for future in page_futures:
                future.result()
        except BaseException:
            # Stopping (SIGTERM, Ctrl-C, the store failing): cut fetches and extractions in
            # flight short instead of waiting out their timeouts, before the pools are shut.
            client.abort()
            extractor.abort()
            raise
        finally:
            # On any error (store failure, SIGTERM) queued pages are dropped, not fetched:
            # nothing of this run is committed, so the next run does them.
            pollers.shutdown(wait=True, cancel_futures=True)
            fetchers.shutdown(wait=True, cancel_futures=True)
            progress.close()

    def _due(self, ledger: Ledger) -> list[SourceRun]:
        bounds = self.ctx.settings.poll_bounds()
        return [
            source
            for source in ledger.sources.values()
            if source.feed.enabled
            and (
                self.poll_all or polling.is_due(source.state.next_due_at, self.ctx.started, bounds)
            )
        ]

    def _account_poll(self, source: SourceRun, sinks: Sinks, ledger: Ledger) -> None:
        result = source.poll
        assert result is not None
        report = self.report
        if result.status == "failed":
            exc = result.error
            assert exc is not None
            report.feeds_failed += 1
            report.failed_feeds[source.feed.name] = exc.reason + (
                f" ({exc.status})" if exc.status else ""
            )
            feed = source.feed
            row = reject_row(
                url=feed.url,
                source=feed.name,
                feed_url=feed.url,
                stage="feed",
                reason=exc.reason,
                detail=exc.detail,
                http_status=exc.status,
                transient=exc.transient,
                run_id=self.ctx.run_id,
            )
            with ledger.lock:
                ledger.rejects[f"feed:{exc.reason}"] += 1
                sinks.rejects.add(row)
            log.warning("feed %s failed: %s", feed.name, exc)
        elif result.status == "not_modified":
            report.feeds_not_modified += 1
        else:
            report.feeds_polled += 1
            report.entries_seen += len(result.entries) + result.entries_dropped
            if result.entries_dropped:  # over the source's entry cap: counted, not silent
                with ledger.lock:
                    ledger.skips["filtered"] += result.entries_dropped
            if result.malformed:
                report.feeds_malformed += 1

    def _commit_request(self, ledger: Ledger, sinks: Sinks, client: HttpClient) -> CommitRequest:
        ctx, report = self.ctx, self.report
        report.bytes_received = client.bytes_received
        report.pages_fetched = ledger.pages_fetched
        report.articles_extracted = ledger.articles_extracted
        report.skips = ledger.skips
        report.rejects = ledger.rejects
        report.articles_updated = len(ledger.update_targets)
        parts = sinks.close()
        report.raw_bytes = sinks.raw_bytes
        now = datetime.now(UTC)
        bounds = ctx.settings.poll_bounds()
        return CommitRequest(
            run_id=ctx.run_id,
            run_key=ctx.run_key,
            parts=parts,
            article_ids=sorted(ledger.article_ids),
            feed_states={
                name: as_dict(
                    polling.next_state(
                        source.state,
                        source.outcome(),
                        run_started=ctx.started,
                        now=now,
                        bounds=bounds,
                    )
                )
                for name, source in ledger.sources.items()
                if source.poll is not None
            },
            report=report.to_dict(),
            index_dates=sorted(ledger.index_dates),
            published_at=ledger.published_at,
            sources=ledger.sources_of_articles(),
            update_targets=ledger.update_targets,
        )
