"""Where a run's output goes before its commit: Parquet parts for new articles, updates
and rejects, and the raw archive (WARC). Everything lands in staging; nothing is visible
until the commit (ingest.lake)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from ingest import __version__, schema
from ingest.lake import PartWriter
from ingest.lake.parts import PartInfo
from ingest.lake.raw import RawArchive
from ingest.lake.request import UPDATES
from ingest.net import Response
from ingest.run.context import RunContext
from ingest.warc import FetchRecord


class Sinks:
    """One shard attempt's writers. Not locked: callers hold the run's ledger lock."""

    def __init__(self, ctx: RunContext) -> None:
        self.articles = self._writer(ctx, schema.article(), "articles")
        self.updates = self._writer(ctx, schema.article(), UPDATES)
        self.rejects = self._writer(ctx, schema.reject(), "rejects")
        self.raw = (
            RawArchive(
                ctx.store,
                ctx.run_key,
                ctx.attempt,
                ctx.shard,
                ctx.ingest_date,
                f"newsflow/{__version__}",
            )
            if ctx.settings.archive_raw
            else None
        )

    @staticmethod
    def _writer(ctx: RunContext, table_schema: Any, table: str) -> PartWriter:
        return PartWriter(
            ctx.store,
            table_schema,
            table,
            ctx.run_key,
            ctx.ingest_date,
            ctx.settings.part_rows,
            shard=ctx.shard,
            attempt=ctx.attempt,
        )

    def archive(self, link: str, resp: Response, fetched_at: datetime) -> dict[str, Any]:
        """The page as fetched into this run's WARC file (thread-safe); the row columns that
        locate its record, or none with archiving off."""
        if self.raw is None:
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
            request_headers=dict(resp.request_headers),
        )
        return self.raw.add(record)

    @property
    def raw_bytes(self) -> int:
        return self.raw.bytes_written if self.raw is not None else 0

    def close(self) -> list[PartInfo]:
        """Everything written out. The WARC file goes out in a thread of its own while the
        Parquet parts are encoded and written: both mostly wait on the store or run in C, so
        the run's tail is the longer of the two, not their sum."""
        if self.raw is None:
            return self._close_parts()
        with ThreadPoolExecutor(1, thread_name_prefix="raw-close") as closing:
            raw = closing.submit(self.raw.close)
            parts = self._close_parts()  # raises after the WARC close ended, if it fails
            return parts + raw.result()

    def _close_parts(self) -> list[PartInfo]:
        return self.articles.close() + self.updates.close() + self.rejects.close()
