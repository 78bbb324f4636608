"""Rows and staged runs for the lake's commit protocol (test_lake, test_maintain)."""

from __future__ import annotations

from datetime import UTC, datetime

from ingest import ids, schema
from ingest.lake import CommitRequest, PartWriter
from ingest.report import RunReport
from ingest.store import Store


def row(n: int, run_id: str) -> dict:
    url = f"https://news.example/a/{n}"
    return {
        "article_id": ids.article_id(url), "url": f"{url}?utm_source=feed", "final_url": url,
        "canonical_url": url, "source": "s", "feed_url": "https://news.example/feed",
        "title": f"t{n}", "authors": [], "published_at": datetime(2025, 12, 18, n % 24, tzinfo=UTC),
        "published_at_source": "feed", "updated_at": None,
        "fetched_at": datetime(2025, 12, 18, tzinfo=UTC), "language": "en",
        "site_name": None, "summary": None, "text": f"body {n}", "word_count": 2,
        "categories": [], "tags": [], "image_url": None, "content_sha256": "0" * 64,
        "simhash": -n, "http_status": 200, "run_id": run_id, "schema_version": 1,
    }  # fmt: skip


def stage(
    store: Store, run_id: str, numbers: list[int], part_rows: int = 2, attempt: str = "a"
) -> CommitRequest:
    key = ids.run_key(run_id)
    writer = PartWriter(
        store, schema.article(), "articles", key, "2025-12-18", part_rows, attempt=attempt
    )
    for n in numbers:
        writer.add(row(n, run_id))
    return CommitRequest(
        run_id=run_id, run_key=key, parts=writer.close(),
        article_ids=[row(n, run_id)["article_id"] for n in numbers],
        feed_states={"s": {"name": "s", "url": "u", "etag": f'"{run_id}"'}},
        report=RunReport(run_id, store.uri, "2025-12-18T10:00:00+00:00").to_dict(),
    )  # fmt: skip
