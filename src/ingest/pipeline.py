"""One ingestion run, orchestration-agnostic: poll -> fetch -> extract -> stage -> commit.

Threads fetch (I/O), a process pool extracts (CPU), and fetching overlaps extraction
because every fetch thread hands its page to the pool and the next fetch starts while
the pool works. Rows stream into bounded Parquet parts; nothing becomes visible until
the commit (see ingest.lake).
"""

from __future__ import annotations

import logging
import secrets
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ingest import __version__, ids, polling, schema
from ingest.config import Feed, Settings
from ingest.extract import ExtractError
from ingest.extractor_pool import ExtractorPool
from ingest.http_client import FetchError, HttpClient
from ingest.lake import STAGING, CommitRequest, KeyIndex, Lake, PartWriter
from ingest.lake.commit import UPDATES
from ingest.lake.keys import Marker
from ingest.lake.raw import RawArchive
from ingest.lease import RunLease, release_if_held
from ingest.normalize import article_row, index_date, reject_row
from ingest.report import RunReport
from ingest.sources import FUTURE_TOLERANCE, FeedEntry, PollResult, parse_source, poll
from ingest.state import FeedState, as_dict, load_feed_states, state_for
from ingest.store import Store, StoreError
from ingest.warc import FetchRecord

log = logging.getLogger(__name__)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class Progress:
    """A bar on a terminal; a log line every few seconds otherwise (Airflow, cron)."""

    def __init__(self, enabled: bool, interval: float = 10.0) -> None:
        self._bar: Any = None
        self._interval = interval
        self._last = time.monotonic()
        self.done = 0
        self.total = 0
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=0, unit="page", desc="ingest", leave=False)

    def add_total(self, n: int) -> None:
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

    def step(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif time.monotonic() - self._last >= self._interval:
            self._last = time.monotonic()
            log.info("progress: %d/%d pages processed", self.done, self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class _FeedRun:
    feed: Feed
    state: FeedState
    poll: PollResult | None = None
    transient_failures: int = 0
    new_articles: int = 0
    checked_since: str | None = None  # entries updated after this are checked again
    rechecks_changed: int = 0
    rechecks_unchanged: int = 0
    rechecks_deferred: bool = False
    backlog_cursor: str | None = None  # where this run's capped rechecks stopped

    def outcome(self) -> polling.PollOutcome:
        result = self.poll
        assert result is not None
        error = result.error
        return polling.PollOutcome(
            status=result.status,
            etag=result.etag,
            last_modified=result.last_modified,
            error=str(error) if error is not None else None,
            retry_after=error.retry_after if error is not None else None,
            hint_seconds=result.hint_seconds,
            entry_dates=tuple(e.published for e in result.entries if e.published),
            new_articles=self.new_articles,
            transient_failures=self.transient_failures,
            rechecks_changed=self.rechecks_changed,
            rechecks_unchanged=self.rechecks_unchanged,
            rechecks_deferred=self.rechecks_deferred,
            backlog_cursor=self.backlog_cursor,
        )


@dataclass
class _RunState:
    """Shared, lock-protected bookkeeping of one run."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    article_ids: set[str] = field(default_factory=set)
    published_at: dict[str, float] = field(default_factory=dict)  # article id -> unix time
    link_feeds: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # key -> feeds
    link_articles: dict[str, str] = field(default_factory=dict)  # link key -> article id
    article_feeds: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    rechecks: dict[str, Marker] = field(default_factory=dict)  # link key -> committed marker
    update_targets: dict[str, str] = field(default_factory=dict)  # article id -> its partition
    scheduled: set[str] = field(default_factory=set)  # link keys fetched in this run
    failed_transiently: set[str] = field(default_factory=set)  # link keys to try again
    index_dates: set[str] = field(default_factory=set)
    skips: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    pages_fetched: int = 0
    articles_extracted: int = 0


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
    ) -> None:
        self.store = store
        self.feeds = feeds
        self.settings = settings
        self.poll_all = poll_all  # poll every enabled source, due or not
        self._raw: RawArchive | None = None
        self.started = datetime.now(UTC)
        self.run_id = run_id or new_run_id(self.started)
        self.run_key = ids.run_key(self.run_id)
        self.shard = shard
        self.attempt = secrets.token_hex(4)
        self.ingest_date = self.started.date().isoformat()
        self.lake = Lake(store)
        self.lease = RunLease(store, self.run_key, self.run_id, ttl=settings.lease_ttl)
        self.report = RunReport(
            run_id=self.run_id, store=store.uri, started_at=self.started.isoformat()
        )

    # ---------------------------------------------------------------------- entry points

    def execute(self) -> RunReport:
        """Stage and commit in one go (the `ingest run` command)."""
        try:
            if self.stage(hold_lease=True) is None:
                return previous_report(self.store, self.run_key)
            return commit_run(self.store, self.run_id, shards=1)
        finally:
            self.lease.release()  # also when the run failed: the next one need not wait

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
        self.lease.acquire(wait=self.settings.lease_wait, process_bound=hold_lease)
        try:
            request = self._ingest(self.lake.keys)
            self.report.seconds = round(time.monotonic() - t0, 3)
            request.report = self.report.to_dict()
            self.store.put_bytes(shard_key(self.run_key, self.shard), request.to_json())
        finally:
            if not hold_lease:
                self.lease.stop_heartbeat()  # other shards of this run may still hold it
        return self.report

    # ---------------------------------------------------------------------- the work

    def _ingest(self, committed: KeyIndex) -> CommitRequest:
        settings = self.settings
        client = HttpClient(settings)
        extractor = ExtractorPool(
            settings.workers, settings.extract_timeout, settings.mp_start_method
        )
        try:  # the pool is shut down on every way out: a live one at exit can crash it
            extractor.start()  # before any fetch or poll thread exists
            return self._poll_and_fetch(committed, client, extractor)
        finally:
            extractor.close()
            client.close()

    def _poll_and_fetch(
        self, committed: KeyIndex, client: HttpClient, extractor: ExtractorPool
    ) -> CommitRequest:
        settings = self.settings
        self._raw = (
            RawArchive(
                self.store,
                self.run_key,
                self.attempt,
                self.shard,
                self.ingest_date,
                f"newsflow/{__version__}",
            )
            if settings.archive_raw
            else None
        )
        articles = PartWriter(
            self.store,
            schema.article(),
            "articles",
            self.run_key,
            self.ingest_date,
            settings.part_rows,
            shard=self.shard,
            attempt=self.attempt,
        )
        updates = PartWriter(
            self.store,
            schema.article(),
            UPDATES,
            self.run_key,
            self.ingest_date,
            settings.part_rows,
            shard=self.shard,
            attempt=self.attempt,
        )
        rejects = PartWriter(
            self.store,
            schema.reject(),
            "rejects",
            self.run_key,
            self.ingest_date,
            settings.part_rows,
            shard=self.shard,
            attempt=self.attempt,
        )
        shared = _RunState()
        states = load_feed_states(self.store)
        runs = {f.name: _FeedRun(f, state_for(states, f.name, f.url)) for f in self.feeds}
        for feed_run in runs.values():
            state = feed_run.state
            feed_run.checked_since = state.checked_at or state.last_success_at
        progress = Progress(settings.progress)

        def parse(body: bytes, feed: Feed, url: str, content_type: str) -> PollResult:
            return extractor.call(parse_source, body, feed, url, content_type, what=feed.url)

        self.report.feeds_total = len(self.feeds)

        def add_reject(
            entry: FeedEntry, key: str, url: str, stage: str, exc: FetchError | ExtractError
        ) -> None:
            status = getattr(exc, "status", None)
            transient = bool(getattr(exc, "transient", False))
            row = reject_row(
                url=url,
                source=entry.feed,
                feed_url=entry.feed_url,
                stage=stage,
                reason=exc.reason,
                detail=exc.detail,
                http_status=status,
                transient=transient,
                run_id=self.run_id,
            )
            with shared.lock:
                shared.rejects[exc.reason] += 1
                if transient:  # every source that listed the link must see it again
                    shared.failed_transiently.add(key)
                    for name, _url in shared.link_feeds.get(key, {(entry.feed, "")}):
                        if name in runs:
                            runs[name].transient_failures += 1
                rejects.add(row)

        def process(entry: FeedEntry, key: str) -> None:
            try:
                self._process(
                    entry,
                    key,
                    client,
                    extractor,
                    (articles, updates),
                    shared,
                    runs,
                    add_reject,
                    committed,
                )
            except StoreError:  # the store failing is the run's problem, not the page's
                raise
            except Exception as exc:  # a bug must cost one page, not the run
                log.exception("internal error on %s", entry.link)
                add_reject(
                    entry,
                    key,
                    entry.link or "",
                    "extract",
                    # transient: once the bug is fixed, a later run gets the page
                    ExtractError("internal_error", f"{type(exc).__name__}: {exc}", transient=True),
                )
            finally:
                progress.step()

        fetchers = ThreadPoolExecutor(settings.fetch_concurrency, "fetch")
        pollers = ThreadPoolExecutor(min(8, max(1, len(self.feeds))), "poll")
        try:
            page_futures = []
            bounds = settings.poll_bounds()
            due = [
                run
                for run in runs.values()
                if run.feed.enabled
                and (self.poll_all or polling.is_due(run.state.next_due_at, self.started, bounds))
            ]
            polls = {pollers.submit(poll, client, run.feed, run.state, parse): run for run in due}
            self.report.feeds_disabled = sum(1 for r in runs.values() if not r.feed.enabled)
            self.report.feeds_not_due = sum(r.feed.enabled for r in runs.values()) - len(due)
            for future in as_completed(polls):
                run = polls[future]
                run.poll = result = future.result()
                self._account_poll(run, rejects, shared)
                todo = self._select(run, result.entries, committed, shared)
                progress.add_total(len(todo))
                page_futures += [fetchers.submit(process, e, k) for e, k in todo]
            for future in page_futures:
                future.result()
        except BaseException:
            # Stopping (SIGTERM, Ctrl-C, the store failing): cut fetches and extractions in
            # flight short instead of waiting out their timeouts. Nothing of this run is
            # committed, so the next run does them.
            client.abort()
            extractor.abort()
            raise
        finally:
            # On any error (store failure, SIGTERM) queued pages are dropped, not fetched:
            # nothing of this run is committed, so the next run does them.
            pollers.shutdown(wait=True, cancel_futures=True)
            fetchers.shutdown(wait=True, cancel_futures=True)
            progress.close()

        self.report.bytes_received = client.bytes_received
        self.report.pages_fetched = shared.pages_fetched
        self.report.articles_extracted = shared.articles_extracted
        self.report.skips = shared.skips
        self.report.rejects = shared.rejects
        self.report.articles_updated = len(shared.update_targets)
        parts = articles.close() + updates.close() + rejects.close()
        if self._raw is not None:
            parts += self._raw.close()
            self.report.raw_bytes = self._raw.bytes_written
        return CommitRequest(
            run_id=self.run_id,
            run_key=self.run_key,
            parts=parts,
            article_ids=sorted(shared.article_ids),
            feed_states={
                name: as_dict(self._next_state(run))
                for name, run in runs.items()
                if run.poll is not None
            },
            report=self.report.to_dict(),
            index_dates=sorted(shared.index_dates),
            published_at=shared.published_at,
            sources=_sources_of(shared),
            update_targets=shared.update_targets,
        )

    def _account_poll(self, run: _FeedRun, rejects: PartWriter, shared: _RunState) -> None:
        result = run.poll
        assert result is not None
        report = self.report
        if result.status == "failed":
            exc = result.error
            assert exc is not None
            report.feeds_failed += 1
            report.failed_feeds[run.feed.name] = exc.reason + (
                f" ({exc.status})" if exc.status else ""
            )
            with shared.lock:
                shared.rejects[f"feed:{exc.reason}"] += 1
                rejects.add(
                    reject_row(
                        url=run.feed.url,
                        source=run.feed.name,
                        feed_url=run.feed.url,
                        stage="feed",
                        reason=exc.reason,
                        detail=exc.detail,
                        http_status=exc.status,
                        transient=exc.transient,
                        run_id=self.run_id,
                    )
                )
            log.warning("feed %s failed: %s", run.feed.name, exc)
        elif result.status == "not_modified":
            report.feeds_not_modified += 1
        else:
            report.feeds_polled += 1
            report.entries_seen += len(result.entries) + result.entries_dropped
            if result.entries_dropped:  # over the source's entry cap: counted, not silent
                with shared.lock:
                    shared.skips["filtered"] += result.entries_dropped
            if result.malformed:
                report.feeds_malformed += 1

    def _select(
        self, run: _FeedRun, entries: list[FeedEntry], committed: KeyIndex, shared: _RunState
    ) -> list[tuple[FeedEntry, str]]:
        """Decide per entry: fetch, or a counted skip. Runs on the main thread only.

        Only this feed's candidate links are looked up among the committed keys."""
        feed = run.feed
        oldest = self.started - timedelta(days=feed.max_age_days) if feed.max_age_days else None
        candidates: list[tuple[FeedEntry, str]] = []
        skips: Counter[str] = Counter()
        for i, entry in enumerate(entries):
            if not entry.link or not entry.link.lower().startswith(("http://", "https://")):
                skips["no_link"] += 1
            elif feed.max_entries is not None and i >= feed.max_entries:
                skips["filtered"] += 1
            elif oldest is not None and entry.published is not None and entry.published < oldest:
                skips["filtered"] += 1
            else:
                candidates.append((entry, ids.url_key(entry.link)))
        seen = committed.committed(key for _, key in candidates)
        changed, deferred = self._rechecks(run, [(e, k) for e, k in candidates if k in seen])
        markers = dict(zip(changed, map(committed.read, changed), strict=True))
        todo = []
        with shared.lock:
            for entry, key in candidates:
                shared.link_feeds.setdefault(key, set()).add((entry.feed, entry.feed_url))
                marker = markers.get(key)
                recheck = marker is not None and marker.ingest_date and marker.content_sha256
                if key in deferred:
                    skips["recheck_deferred"] += 1
                elif key in seen and not recheck:
                    skips["already_seen"] += 1
                elif key in shared.scheduled:
                    skips["duplicate_in_run"] += 1
                    if key in shared.failed_transiently:  # another source's try already failed
                        run.transient_failures += 1
                else:
                    if recheck:
                        assert marker is not None
                        shared.rechecks[key] = marker
                    shared.scheduled.add(key)
                    todo.append((entry, key))
            shared.skips.update(skips)
        return todo

    def _rechecks(
        self, run: _FeedRun, committed: list[tuple[FeedEntry, str]]
    ) -> tuple[list[str], set[str]]:
        """Which committed links to fetch again because their entry says they changed since
        the source was last checked: (keys to recheck, keys deferred to a later run).

        Dates beyond the future tolerance are ignored (a year-9999 `updated` would force a
        refetch every poll). At most `max_rechecks` per source per run, oldest change
        first, continuing where a capped run stopped; none while the source is in recheck
        backoff (its dates move without its pages)."""
        horizon = self.started + FUTURE_TOLERANCE
        since = _parse_time(run.checked_since)
        cursor = _parse_cursor(run.state.recheck_cursor)
        due: list[tuple[datetime, str]] = []
        for entry, key in committed:
            updated = entry.updated
            if updated is None or since is None or not since < updated <= horizon:
                continue
            if cursor is not None and (updated, key) <= cursor:
                continue  # rechecked by an earlier run of this backlog
            due.append((updated, key))
        if not due:
            return [], set()
        due.sort()
        if polling.rechecks_paused(run.state, self.started):
            run.rechecks_deferred = True
            return [], {key for _, key in due}
        cap = self.settings.max_rechecks
        if cap == 0:  # rechecks turned off: a changed date is not a reason to fetch
            return [], set()
        now, later = due[:cap], due[cap:]
        if later:
            run.rechecks_deferred = True
            if now:
                last_updated, last_key = now[-1]
                run.backlog_cursor = f"{last_updated.isoformat()} {last_key}"
        return [key for _, key in now], {key for _, key in later}

    def _process(
        self,
        entry: FeedEntry,
        key: str,
        client: HttpClient,
        extractor: ExtractorPool,
        writers: tuple[PartWriter, PartWriter],
        shared: _RunState,
        runs: dict[str, _FeedRun],
        add_reject: Any,
        committed: KeyIndex,
    ) -> None:
        assert entry.link is not None
        try:
            resp = client.get(entry.link, check_robots=True)
        except FetchError as exc:
            if exc.reason == "robots_disallowed":
                with shared.lock:
                    shared.skips["robots"] += 1
                return
            add_reject(entry, key, entry.link, "fetch", exc)
            return
        fetched_at = datetime.now(UTC)
        with shared.lock:
            shared.pages_fetched += 1
        try:
            extracted = extractor.extract(resp.text(), resp.final_url)
        except ExtractError as exc:
            add_reject(entry, key, resp.final_url, "extract", exc)
            return
        if extracted["word_count"] < self.settings.min_words:
            add_reject(
                entry,
                key,
                resp.final_url,
                "extract",
                ExtractError(
                    "too_short",
                    f"{extracted['word_count']} words, minimum {self.settings.min_words}",
                ),
            )
            return
        row = article_row(
            entry,
            final_url=resp.final_url,
            http_status=resp.status,
            fetched_at=fetched_at,
            extracted=extracted,
            run_id=self.run_id,
        )
        # Only links that reached an article become "seen" (the commit records the keys of
        # its rows): a failed link stays retryable.
        aid = row["article_id"]
        marker = shared.rechecks.get(key)
        if marker is not None and marker.article_id != aid:
            marker = None  # the link now leads to another article: a new one, or a known one
        known = marker is None and bool(committed.committed([aid]))
        with shared.lock:
            shared.articles_extracted += 1
            shared.link_articles[key] = aid
            writer = self._route(row, marker, known, shared, runs[entry.feed], writers)
        if writer is None:
            return
        # Archived only now, once a row will point at the record: an unchanged recheck or a
        # duplicate leaves nothing under raw/.
        row.update(self._archive(entry.link, resp, fetched_at, client))
        with shared.lock:
            writer.add(row)

    def _route(
        self,
        row: dict[str, Any],
        marker: Marker | None,
        known: bool,
        shared: _RunState,
        feed_run: _FeedRun,
        writers: tuple[PartWriter, PartWriter],
    ) -> PartWriter | None:
        """Where an extracted page goes: a new row, an update of a committed row, or a
        counted skip (None). Called with the run's lock held."""
        aid = row["article_id"]
        if marker is not None:  # a committed article its source says was updated
            if row["content_sha256"] == marker.content_sha256:
                shared.skips["unchanged"] += 1  # same body: nothing to write
                feed_run.rechecks_unchanged += 1
                return None
            feed_run.rechecks_changed += 1
            if aid in shared.update_targets:
                shared.skips["duplicate_in_run"] += 1
                return None
            assert marker.ingest_date is not None
            shared.update_targets[aid] = marker.ingest_date
            shared.index_dates.add(index_date(row).isoformat())
            return writers[1]
        if known:  # another link of a committed article
            shared.skips["already_seen"] += 1
            return None
        if aid in shared.article_ids:
            shared.skips["duplicate_in_run"] += 1
            return None
        shared.article_ids.add(aid)
        if row["published_at"] is not None:
            shared.published_at[aid] = row["published_at"].timestamp()
        shared.index_dates.add(index_date(row).isoformat())
        feed_run.new_articles += 1
        return writers[0]

    def _archive(
        self, link: str, resp: Any, fetched_at: datetime, client: HttpClient
    ) -> dict[str, Any]:
        """The page as fetched into this run's WARC file; the row columns locating it."""
        if self._raw is None:
            return {}
        record = FetchRecord(
            url=link,
            final_url=resp.final_url,
            redirects=list(resp.redirects),
            status=resp.status,
            headers=dict(resp.headers),
            body=resp.body,
            fetched_at=fetched_at,
            ip_address=resp.ip_address,
            request_headers={
                "User-Agent": client.settings.user_agent,
                "Accept-Encoding": "gzip, deflate",
            },
        )
        return self._raw.add(record)

    def _next_state(self, run: _FeedRun) -> FeedState:
        return polling.next_state(
            run.state,
            run.outcome(),
            run_started=self.started,
            now=datetime.now(UTC),
            bounds=self.settings.poll_bounds(),
        )


def _parse_time(value: str | None) -> datetime | None:
    """An aware time from the feed state; None for anything else (a hand-edited state must
    not make a comparison with the entries' aware dates fail the run)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _parse_cursor(value: str | None) -> tuple[datetime, str] | None:
    """A recheck cursor "<updated ISO> <link key>"; None when absent or unreadable (the
    backlog then starts over, which costs rechecks, never updates)."""
    if not value or " " not in value:
        return None
    stamp, key = value.rsplit(" ", 1)
    when = _parse_time(stamp)
    return (when, key) if when is not None else None


def _sources_of(shared: _RunState) -> dict[str, list[list[str]]]:
    """Every feed that linked each article of this run, through any of its links."""
    out: dict[str, set[tuple[str, str]]] = {}
    for key, aid in shared.link_articles.items():
        out.setdefault(aid, set()).update(shared.link_feeds.get(key, ()))
    return {aid: sorted([name, url] for name, url in feeds) for aid, feeds in out.items()}


def run(
    store: Store,
    feeds: list[Feed],
    settings: Settings,
    run_id: str | None = None,
    poll_all: bool = False,
) -> RunReport:
    return Run(store, feeds, settings, run_id, poll_all=poll_all).execute()


# -------------------------------------------------------------------------- shards


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
    )
    result = lake.commit(merged)
    release_if_held(store, key)
    final = RunReport.from_dict(result.report)
    final.already_committed = result.already_committed
    return final
