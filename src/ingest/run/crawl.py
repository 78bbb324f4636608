"""The work of one shard: read the WebSub inbox and poll the due sources, fetch and
extract their new pages, write the parts, and say what the commit must record (including
the inbox items it consumes).

Threads fetch (I/O), a process pool extracts (CPU), and fetching overlaps extraction
because every fetch thread hands its page to the pool and the next fetch starts while
the pool works. Rows stream into bounded Parquet parts; nothing becomes visible until
the commit (see ingest.lake).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from itertools import chain

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
from ingest.sources.model import FeedEntry
from ingest.sources.poll import parse_response
from ingest.state import as_dict, load_feed_states, state_for
from ingest.websub.inbox import Inbox, Notification

log = logging.getLogger(__name__)

MAX_POLL_THREADS = 8


class Crawl:
    def __init__(
        self,
        ctx: RunContext,
        feeds: list[Feed],
        report: RunReport,
        poll_all: bool = False,
        all_feeds: list[Feed] | None = None,
    ) -> None:
        self.ctx = ctx
        self.feeds = feeds
        self.report = report
        self.poll_all = poll_all  # poll every enabled source, due or not
        self.feeds_everywhere = all_feeds if all_feeds is not None else feeds  # every shard's

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
        inbox, consumed = self._drain(ledger)
        due = self._due(ledger, thin={n.source for n in inbox if not n.body})
        self.report.feeds_total = len(self.feeds)
        self.report.feeds_disabled = sum(1 for f in self.feeds if not f.enabled)
        self.report.feeds_not_due = sum(f.enabled for f in self.feeds) - len(due)
        fat = [n for n in inbox if n.body]
        self._poll_and_fetch(due, fat, pages, sinks, ledger, client, extractor)
        request = self._commit_request(ledger, sinks, client)
        request.inbox = consumed
        return request

    def _drain(self, ledger: Ledger) -> tuple[list[Notification], list[str]]:
        """The inbox's waiting notifications for this shard's sources, and the keys this
        run's commit consumes. Another shard's are left to it; one for a source that is no
        longer in the feeds file or is disabled is consumed unread and counted (its
        subscription is being cancelled)."""
        if not self.ctx.settings.drain_inbox:
            return [], []
        live = {f.name for f in self.feeds_everywhere if f.enabled}
        mine: list[Notification] = []
        consumed: list[str] = []
        for key, note in Inbox(self.ctx.store).pending():
            source = ledger.sources.get(note.source)
            if source is not None and source.feed.enabled:
                mine.append(note)
            elif note.source in live:
                continue  # another shard's
            else:
                ledger.skips["push_source_gone"] += 1
            consumed.append(key)
        self.report.notifications = len(mine)
        return mine, consumed

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
        pushed: list[Notification],
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

        def read_push(note: Notification) -> PollResult:
            feed = ledger.sources[note.source].feed
            return parse_response(client, feed, note.body, note.topic, note.content_type, parse)

        fetchers = ThreadPoolExecutor(settings.fetch_concurrency, "fetch")
        pollers = ThreadPoolExecutor(min(MAX_POLL_THREADS, max(1, len(self.feeds))), "poll")
        try:
            Reads = dict[Future[PollResult], tuple[SourceRun, Notification | None]]
            pushes: Reads = {
                pollers.submit(read_push, n): (ledger.sources[n.source], n) for n in pushed
            }
            polls: Reads = {
                pollers.submit(poll, client, s.feed, s.state, parse): (s, None) for s in due
            }
            page_futures: list[Future[None]] = []
            # all reads run at once; notifications are taken first, so an entry both pushed
            # and polled in this run counts as pushed
            for future in chain(as_completed(pushes), as_completed(polls)):  # lazily
                source, note = pushes.get(future) or polls[future]
                result = future.result()
                if note is None:
                    source.poll = result
                    self._account_poll(source, sinks, ledger)
                    entries = _seen(result.entries, "poll", datetime.now(UTC))
                elif result.status != "ok":
                    ledger.skips["push_unreadable"] += 1
                    name = source.feed.name
                    log.warning("notification for %s is unreadable: %s", name, result.error)
                    continue
                else:
                    entries = _seen(result.entries, "push", note.received)
                todo = select(
                    source,
                    entries,
                    pages.committed,
                    ledger,
                    started=self.ctx.started,
                    max_rechecks=settings.max_rechecks,
                )
                progress.add_total(len(todo))
                if todo:
                    extractor.warm()  # while the first pages are being fetched
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

    def _due(self, ledger: Ledger, thin: set[str]) -> list[SourceRun]:
        """Sources to poll: the due ones (all with `poll_all`), and those a thin ping named;
        with `push_only`, only the latter."""
        bounds = self.ctx.settings.poll_bounds()
        push_only = self.ctx.settings.push_only
        return [
            source
            for source in ledger.sources.values()
            if source.feed.enabled
            and (
                source.feed.name in thin
                or (
                    not push_only
                    and (
                        self.poll_all
                        or polling.is_due(source.state.next_due_at, self.ctx.started, bounds)
                    )
                )
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
            pushed=sorted(ledger.pushed),
            sources=ledger.sources_of_articles(),
            update_targets=ledger.update_targets,
        )


def _seen(entries: list[FeedEntry], arrival: str, at: datetime) -> list[FeedEntry]:
    """The entries marked with how and when they reached us."""
    for entry in entries:
        entry.arrival, entry.first_seen_at = arrival, at
    return entries
