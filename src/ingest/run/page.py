"""One page: fetch → extract → route → archive. Every way it can end is in the ledger: an
article or update row, a reject row, or a counted skip."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from ingest.errors import ExtractError, IngestError
from ingest.extractor_pool import ExtractorPool
from ingest.lake.keys import Marker
from ingest.net import FetchError, HttpClient
from ingest.normalize import article_row, index_date, reject_row
from ingest.run.context import RunContext
from ingest.run.ledger import Ledger, SourceRun
from ingest.run.select import CommittedKeys
from ingest.run.sinks import Sinks
from ingest.sources import FeedEntry
from ingest.store import StoreError

log = logging.getLogger(__name__)

Route = Literal["article", "update"] | None


class PageStage:
    def __init__(
        self,
        ctx: RunContext,
        client: HttpClient,
        extractor: ExtractorPool,
        sinks: Sinks,
        ledger: Ledger,
        committed: CommittedKeys,
    ) -> None:
        self.ctx = ctx
        self.client = client
        self.extractor = extractor
        self.sinks = sinks
        self.ledger = ledger
        self.committed = committed

    def __call__(self, entry: FeedEntry, key: str) -> None:
        """Process one page; a bug costs that page (a transient reject), never the run."""
        try:
            self._process(entry, key)
        except StoreError:  # the store failing is the run's problem, not the page's
            raise
        except Exception as exc:
            log.exception("internal error on %s", entry.link)
            # transient: once the bug is fixed, a later run gets the page
            error = ExtractError("internal_error", f"{type(exc).__name__}: {exc}", transient=True)
            self.reject(entry, key, entry.link or "", "extract", error)

    def reject(self, entry: FeedEntry, key: str, url: str, stage: str, exc: IngestError) -> None:
        status = exc.status if isinstance(exc, FetchError) else None
        row = reject_row(
            url=url,
            source=entry.feed,
            feed_url=entry.feed_url,
            stage=stage,
            reason=exc.reason,
            detail=exc.detail,
            http_status=status,
            transient=exc.transient,
            run_id=self.ctx.run_id,
        )
        ledger = self.ledger
        with ledger.lock:
            ledger.rejects[exc.reason] += 1
            if exc.transient:
                ledger.transient_failure(key, entry.feed)
            self.sinks.rejects.add(row)

    def _process(self, entry: FeedEntry, key: str) -> None:
        assert entry.link is not None
        ledger = self.ledger
        try:
            resp = self.client.get(entry.link, check_robots=True)
        except FetchError as exc:
            if exc.reason == "robots_disallowed":
                with ledger.lock:
                    ledger.skips["robots"] += 1
                return
            self.reject(entry, key, entry.link, "fetch", exc)
            return
        fetched_at = datetime.now(UTC)
        with ledger.lock:
            ledger.pages_fetched += 1
        try:
            extracted = self.extractor.extract(
                resp.body, resp.headers.get("content-type", ""), resp.final_url
            )
        except ExtractError as exc:
            self.reject(entry, key, resp.final_url, "extract", exc)
            return
        min_words = self.ctx.settings.min_words
        if extracted["word_count"] < min_words:
            too_short = ExtractError(
                "too_short", f"{extracted['word_count']} words, minimum {min_words}"
            )
            self.reject(entry, key, resp.final_url, "extract", too_short)
            return
        row = article_row(
            entry,
            final_url=resp.final_url,
            http_status=resp.status,
            fetched_at=fetched_at,
            extracted=extracted,
            run_id=self.ctx.run_id,
        )
        # Only links that reached an article become "seen" (the commit records the keys of
        # its rows): a failed link stays retryable.
        aid = row["article_id"]
        marker = ledger.rechecks.get(key)
        if marker is not None and marker.article_id != aid:
            marker = None  # the link now leads to another article: a new one, or a known one
        known = marker is None and bool(self.committed.committed([aid]))
        with ledger.lock:
            ledger.articles_extracted += 1
            ledger.link_articles[key] = aid
            where = route(row, marker, known, ledger, ledger.sources[entry.feed])
        if where is None:
            return
        # Archived only now, once a row will point at the record: an unchanged recheck or a
        # duplicate leaves nothing under raw/.
        row.update(self.sinks.archive(entry.link, resp, fetched_at))
        with ledger.lock:
            (self.sinks.articles if where == "article" else self.sinks.updates).add(row)


def route(
    row: dict[str, Any], marker: Marker | None, known: bool, ledger: Ledger, source: SourceRun
) -> Route:
    """Where an extracted page goes: a new article, an update of a committed one, or a
    counted skip (None). `marker`: the committed article its source said changed; `known`:
    the page is an article committed under another link. Call with the ledger's lock held."""
    aid = row["article_id"]
    if marker is not None:
        if row["content_sha256"] == marker.content_sha256:
            ledger.skips["unchanged"] += 1  # same body: nothing to write
            source.rechecks_unchanged += 1
            return None
        source.rechecks_changed += 1
        if aid in ledger.update_targets:
            ledger.skips["duplicate_in_run"] += 1
            return None
        assert marker.ingest_date is not None
        ledger.update_targets[aid] = marker.ingest_date
        ledger.index_dates.add(index_date(row).isoformat())
        return "update"
    if known:
        ledger.skips["already_seen"] += 1
        return None
    if aid in ledger.article_ids:
        ledger.skips["duplicate_in_run"] += 1
        return None
    ledger.article_ids.add(aid)
    if row["published_at"] is not None:
        ledger.published_at[aid] = row["published_at"].timestamp()
    if row.get("arrival") == "push":
        ledger.pushed.add(aid)
    ledger.index_dates.add(index_date(row).isoformat())
    source.new_articles += 1
    return "article"
