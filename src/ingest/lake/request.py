"""What a run asks the lake to make visible, and what the commit did: the request is
written to staging before the commit, so a killed publication can be finished from it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ingest.lake.parts import STAGING, PartInfo

REPORTS = "_reports/"
UPDATES = "updates"  # staged parts holding new versions of committed articles


@dataclass
class CommitRequest:
    """Everything one run wants to make visible, gathered from its shards."""

    run_id: str
    run_key: str
    parts: list[PartInfo]
    article_ids: list[str]
    feed_states: dict[str, dict[str, Any]]
    report: dict[str, Any]
    # Index dates (UTC publication day, else fetch day) of the articles: what to rebuild.
    index_dates: list[str] = field(default_factory=list)
    # Publication time (unix seconds) of the articles that have one: the run's freshness.
    published_at: dict[str, float] = field(default_factory=dict)
    # Every feed that linked each article in this run: article id -> [[name, feed URL]...]
    sources: dict[str, list[list[str]]] = field(default_factory=dict)
    # Articles updated at their source: article id -> ingest date of the row to update
    # (their new rows are the parts of kind UPDATES)
    update_targets: dict[str, str] = field(default_factory=dict)
    # Inbox items this run read (ingest.websub.inbox): consumed by its publication
    inbox: list[str] = field(default_factory=list)
    # Articles that arrived by push (the others by poll): the freshness split
    pushed: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CommitRequest:
        data = json.loads(raw)
        data["parts"] = [PartInfo(**p) for p in data["parts"]]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class CommitResult:
    version: int
    run_id: str
    already_committed: bool
    articles_committed: int
    duplicates_dropped: int
    dates: list[str]  # ingest_date partitions written
    index_dates: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def request_key(run_key: str) -> str:
    return f"{STAGING}{run_key}/commit.json"


def report_key(run_key: str, report: dict[str, Any]) -> str:
    """Reports by start day, so maintenance expires them by listing whole days."""
    day = str(report.get("started_at") or datetime.now(UTC).isoformat())[:10]
    return f"{REPORTS}date={day}/{run_key}.json"
