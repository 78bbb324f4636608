"""Dates as sources write them, and the order of entries by date."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ingest.config import Feed
from ingest.sources.model import FUTURE_TOLERANCE, MAX_SOURCE_ENTRIES, FeedEntry


def from_struct(struct: Any) -> datetime | None:
    if not struct:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(struct), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


# W3C Datetime (sitemaps), of which RFC 3339 (JSON Feed) is a profile: YYYY, YYYY-MM,
# YYYY-MM-DD, then optionally a time with or without seconds, fraction and offset.
_W3C_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*([Zz]|[+-]\d{2}(?::?\d{2})?)?)?)?)?"
)


def parse_datetime(value: object) -> datetime | None:
    """A W3C Datetime / RFC 3339 string as an aware UTC datetime; anything else is None.

    A time without an offset is taken as UTC, a date alone as its midnight UTC."""
    if not isinstance(value, str):
        return None
    match = _W3C_DATETIME.fullmatch(value.strip()[:64])
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        tz = UTC
        if offset and offset not in "Zz":
            sign = -1 if offset[0] == "-" else 1
            digits = offset[1:].replace(":", "")
            minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
            tz = timezone(sign * timedelta(minutes=minutes))
        when = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
        return when.astimezone(UTC)
    except (ValueError, OverflowError):  # month 13, hour 25, offset beyond a day, year 0
        return None


def recency(entry: FeedEntry, now: datetime | None = None) -> datetime | None:
    """The entry's newest date (published or updated), ignoring dates in the future."""
    limit = (now or datetime.now(UTC)) + FUTURE_TOLERANCE
    dates = [d for d in (entry.published, entry.updated) if d is not None and d <= limit]
    return max(dates, default=None)


def entry_cap(feed: Feed) -> int:
    return feed.max_entries or MAX_SOURCE_ENTRIES


def newest_first(entries: list[FeedEntry], cap: int) -> tuple[list[FeedEntry], int]:
    """Entries newest first (undated ones after the dated, in document order), cut to
    `cap`; returns them and how many were cut. Order matters because `max_entries` keeps
    the first entries: for formats that are not in date order (sitemaps), that must mean
    the newest."""
    now = datetime.now(UTC)
    oldest = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(entries, key=lambda e: recency(e, now) or oldest, reverse=True)  # stable
    return ordered[:cap], max(0, len(ordered) - cap)
