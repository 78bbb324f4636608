"""The run report: what happened to every feed and every entry, in numbers."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("1", "max"))


def freshness(latencies: Iterable[float]) -> dict[str, float | None]:
    """Summary of publication-to-commit latencies (seconds) for the run report.

    Nearest-rank quantiles, so every value is one an article really had. A negative
    latency (a publication time ahead of the commit clock, which normalize tolerates up to
    a day) counts as 0. Without observations the quantiles are None: JSON has no NaN."""
    values = sorted(max(0.0, float(v)) for v in latencies)
    out: dict[str, float | None] = {"count": len(values), "sum": round(sum(values), 3)}
    for q, key in QUANTILES:
        out[key] = (
            round(values[max(0, math.ceil(float(q) * len(values)) - 1)], 3) if values else None
        )
    return out


@dataclass
class RunReport:
    run_id: str
    store: str
    started_at: str
    finished_at: str | None = None
    seconds: float = 0.0
    feeds_total: int = 0
    feeds_polled: int = 0
    feeds_not_modified: int = 0
    feeds_not_due: int = 0  # not polled: adaptive polling says later (`--all` polls them)
    feeds_failed: int = 0
    feeds_disabled: int = 0
    feeds_malformed: int = 0
    failed_feeds: dict[str, str] = field(default_factory=dict)
    entries_seen: int = 0
    pages_fetched: int = 0
    articles_extracted: int = 0
    articles_written: int = 0
    articles_updated: int = 0  # committed articles whose changed body replaced their row
    duplicates_dropped_at_commit: int = 0
    skips: Counter[str] = field(default_factory=Counter)
    rejects: Counter[str] = field(default_factory=Counter)
    bytes_received: int = 0
    raw_bytes: int = 0  # WARC bytes this run archived (gzip)
    dates_touched: list[str] = field(default_factory=list)  # index days to rebuild
    partitions: list[str] = field(default_factory=list)  # ingest_date partitions written
    table_version: int | None = None  # the articles table version this run committed
    already_committed: bool = False
    # publication-to-commit seconds of the articles written: count, sum, p50, p90, max
    freshness_seconds: dict[str, float | None] = field(default_factory=dict)
    # the same, by how the articles arrived: {"push": {...}, "poll": {...}}
    freshness_by_arrival: dict[str, dict[str, float | None]] = field(default_factory=dict)
    notifications: int = 0  # WebSub notifications read from the inbox

    def entry_rejects(self) -> int:
        return sum(n for reason, n in self.rejects.items() if not reason.startswith("feed:"))

    def counters(self) -> dict[str, int | float]:
        """The numbers dashboards and alerts watch, flat (XCom, asset events, metrics)."""
        return {
            "feeds_total": self.feeds_total,
            "feeds_polled": self.feeds_polled,
            "feeds_not_modified": self.feeds_not_modified,
            "feeds_not_due": self.feeds_not_due,
            "feeds_failed": self.feeds_failed,
            "entries_seen": self.entries_seen,
            "pages_fetched": self.pages_fetched,
            "articles_written": self.articles_written,
            "articles_updated": self.articles_updated,
            "rejects": self.entry_rejects(),
            "duplicates_in_run": self.skips.get("duplicate_in_run", 0),
            "duplicates_dropped_at_commit": self.duplicates_dropped_at_commit,
            "bytes_received": self.bytes_received,
            "seconds": self.seconds,
        }

    def merge(self, other: RunReport) -> None:
        """Add another shard's counts to this one."""
        for name in ("feeds_total", "feeds_polled", "feeds_not_modified", "feeds_not_due",
                     "feeds_failed", "articles_updated",
                     "feeds_disabled", "feeds_malformed", "entries_seen", "pages_fetched",
                     "articles_extracted", "bytes_received", "raw_bytes",
                     "notifications"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed_feeds.update(other.failed_feeds)
        self.skips.update(other.skips)
        self.rejects.update(other.rejects)
        self.started_at = min(self.started_at, other.started_at)
        self.seconds = max(self.seconds, other.seconds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skips"] = dict(sorted(self.skips.items()))
        data["rejects"] = dict(sorted(self.rejects.items()))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        report = cls(**known)
        report.skips = Counter(data.get("skips", {}))
        report.rejects = Counter(data.get("rejects", {}))
        return report

    def summary(self) -> str:
        lines = [
            f"run {self.run_id}"
            + (" (already committed: nothing changed)" if self.already_committed else ""),
            f"  store           {self.store}",
            f"  feeds           {self.feeds_total} total: {self.feeds_polled} polled, "
            f"{self.feeds_not_modified} not modified, {self.feeds_failed} failed"
            + (f", {self.feeds_not_due} not due" if self.feeds_not_due else "")
            + (f", {self.feeds_disabled} disabled" if self.feeds_disabled else ""),
        ]
        for name, why in sorted(self.failed_feeds.items()):
            lines.append(f"    failed feed   {name}: {why}")
        lines += [
            f"  entries seen    {self.entries_seen}",
            f"  articles        {self.articles_written} written"
            + (f", {self.articles_updated} updated" if self.articles_updated else "")
            + (
                f" ({self.duplicates_dropped_at_commit} dropped as already committed)"
                if self.duplicates_dropped_at_commit
                else ""
            ),
            "  skips           " + (_counts(self.skips) or "none"),
            "  rejects         " + (_counts(self.rejects) or "none"),
            f"  bytes           {self.bytes_received:,}",
            f"  dates touched   {', '.join(self.dates_touched) or 'none'} (index days to rebuild)",
            f"  seconds         {self.seconds:.1f}",
        ]
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(counter.items()))
