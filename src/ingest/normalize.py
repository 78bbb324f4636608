"""Turn a feed entry + fetched page + extraction into one row of the article schema."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from ingest import ids, schema
from ingest.sources.model import FeedEntry
from ingest.text import clean_value

FUTURE_TOLERANCE = timedelta(days=1)


def index_date(row: dict[str, Any]) -> date:
    """The day an article belongs to in the daily index: its UTC publication day, or the
    day it was fetched when neither page nor feed gave a date."""
    when = row["published_at"] or row["fetched_at"]
    return when.astimezone(UTC).date()


def parse_page_date(value: str | None) -> tuple[datetime | None, bool]:
    """Parse htmldate output; the flag says whether a time of day was present."""
    if not value:
        return None, False
    for fmt, has_time in (("%Y-%m-%dT%H:%M:%S%z", True), ("%Y-%m-%d", False)):
        try:
            parsed = datetime.strptime(value, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        has_time = has_time and (parsed.hour, parsed.minute, parsed.second) != (0, 0, 0)
        return parsed.astimezone(UTC), has_time
    return None, False


def choose_published(
    page_value: str | None, feed_value: datetime | None, now: datetime
) -> tuple[datetime | None, str | None]:
    """Prefer the page's date; take the feed's when the page has none or only a day that
    the feed's timestamp agrees with (the feed then adds the time of day)."""
    limit = now + FUTURE_TOLERANCE
    page_dt, page_has_time = parse_page_date(page_value)
    if page_dt is not None and page_dt > limit:
        page_dt = None
    if feed_value is not None and feed_value > limit:
        feed_value = None
    if page_dt is not None:
        if not page_has_time and feed_value is not None and feed_value.date() == page_dt.date():
            return feed_value, "feed"
        return page_dt, "page"
    if feed_value is not None:
        return feed_value, "feed"
    return None, None


def choose_canonical(page_canonical: str | None, final_url: str) -> str:
    """Trust the page's rel=canonical only on its own host: a page may not claim another
    site's article (that would let it overwrite someone else's id)."""
    if page_canonical:
        absolute = urljoin(final_url, page_canonical.strip())
        if absolute.startswith(("http://", "https://")) and ids.same_site(absolute, final_url):
            return ids.canonical_url(absolute)
    return ids.canonical_url(final_url)


def article_row(
    entry: FeedEntry,
    *,
    final_url: str,
    http_status: int,
    fetched_at: datetime,
    extracted: dict[str, Any],
    run_id: str,
) -> dict[str, Any]:
    canonical = choose_canonical(extracted.get("canonical"), final_url)
    published, published_source = choose_published(
        extracted.get("date"), entry.published, fetched_at
    )
    updated = (
        entry.updated if entry.updated and entry.updated <= fetched_at + FUTURE_TOLERANCE else None
    )
    image = extracted.get("image")
    row = {
        "article_id": ids.article_id(canonical),
        "url": entry.link,
        "final_url": final_url,
        "canonical_url": canonical,
        "source": entry.feed,
        "feed_url": entry.feed_url,
        "title": extracted.get("title") or entry.title,
        "authors": extracted.get("authors") or entry.authors,
        "published_at": published,
        "published_at_source": published_source,
        "updated_at": updated,
        "fetched_at": fetched_at,
        "language": extracted.get("language") or entry.language,
        "site_name": extracted.get("site_name") or entry.site_name,
        "summary": extracted.get("description") or entry.summary,
        "text": extracted["text"],
        "word_count": extracted["word_count"],
        "categories": extracted.get("categories") or entry.categories,
        "tags": extracted.get("tags") or [],
        "image_url": urljoin(final_url, image) if image else None,
        "content_sha256": extracted["content_sha256"],
        "simhash": extracted["simhash"],
        "http_status": http_status,
        "run_id": run_id,
        "schema_version": schema.article().version,
        "sources": [entry.feed],  # the commit adds the run's other feeds linking it
        "revision": 1,
        "revised_at": None,
        "extractor": extracted.get("extractor"),
        "arrival": entry.arrival,
        "first_seen_at": entry.first_seen_at or fetched_at,
    }
    return {key: clean_value(value) for key, value in row.items()}


def reject_row(
    *,
    url: str,
    source: str,
    feed_url: str,
    stage: str,
    reason: str,
    detail: str | None,
    http_status: int | None,
    transient: bool,
    run_id: str,
) -> dict[str, Any]:
    return {
        "url": url,
        "source": source,
        "feed_url": feed_url,
        "stage": stage,
        "reason": reason,
        "detail": clean_value((detail or "")[:2000]) or None,
        "http_status": http_status,
        "transient": transient,
        "occurred_at": datetime.now(UTC),
        "run_id": run_id,
        "schema_version": schema.reject().version,
    }
