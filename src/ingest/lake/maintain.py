"""Keeping the tables cheap to read and the store from filling up: `ingest maintain`.

Every step is safe while runs ingest and readers read: compaction is a table transaction
(readers see the old files or the new ones, never both, and the rows are the same);
vacuum deletes only files no table version within the retention references; staging is
dropped only when two maintenance passes at least `staging_days` apart both saw it and its
run never committed. Idempotent: running it twice in a row changes nothing the second time.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ingest.lake.commit import REPORTS, Lake
from ingest.lake.parts import STAGING
from ingest.lake.raw import RAW
from ingest.lake.tables import ARTICLES, REJECTS, data_key, open_table, partition_days
from ingest.lease import RunLease
from ingest.store import Store

log = logging.getLogger(__name__)

STATE = "_state/maintain.json"
TARGET_FILE_BYTES = 128 * 1024 * 1024


@dataclass
class MaintenanceResult:
    compacted: dict[str, int] = field(default_factory=dict)  # files removed by compaction
    vacuumed: dict[str, int] = field(default_factory=dict)  # files deleted
    staging_dropped: list[str] = field(default_factory=list)
    reports_expired: int = 0
    raw_files_expired: int = 0

    def summary(self) -> str:
        parts = [
            f"{kind}: {self.compacted.get(kind, 0)} files compacted, "
            f"{self.vacuumed.get(kind, 0)} vacuumed"
            for kind in (ARTICLES, REJECTS)
        ]
        parts.append(f"abandoned staging dropped: {len(self.staging_dropped)}")
        parts.append(f"reports expired: {self.reports_expired}")
        if self.raw_files_expired:
            parts.append(f"raw WARC files expired: {self.raw_files_expired}")
        return "; ".join(parts)


def maintain(
    store: Store,
    *,
    retention_hours: int = 168,
    staging_days: float = 2.0,
    report_days: float = 90.0,
    rebuild_keys: bool = False,
    raw_days: float | None = None,
    now: datetime | None = None,
) -> MaintenanceResult:
    now = now or datetime.now(UTC)
    result = MaintenanceResult()
    lake = Lake(store)
    if rebuild_keys:  # before recover: its roll-forward is what needs the markers whole
        files = lake.keys.rebuild(lake.articles())
        log.info("key markers rebuilt from %d data files", files)
    lake.recover()
    for kind in (ARTICLES, REJECTS):
        table = open_table(store, kind)
        if table is None:
            continue
        metrics = table.optimize.compact(target_size=TARGET_FILE_BYTES)
        result.compacted[kind] = int(metrics.get("numFilesRemoved", 0))
        options = {"retention_hours": retention_hours, "enforce_retention_duration": False}
        # vacuum names every expired tombstone, deleted before or not: count real deletions
        doomed = [
            p for p in table.vacuum(dry_run=True, **options) if store.exists(data_key(kind, p))
        ]
        table.vacuum(dry_run=False, **options)
        result.vacuumed[kind] = len(doomed)
        table.create_checkpoint()
        table.cleanup_metadata()
    result.staging_dropped = _drop_abandoned_staging(store, lake, now, staging_days)
    result.reports_expired = _expire_reports(store, now, report_days)
    if raw_days is not None:
        result.raw_files_expired = _expire_raw(store, lake, now, raw_days)
    log.info("maintenance: %s", result.summary())
    return result


def _drop_abandoned_staging(store: Store, lake: Lake, now: datetime, days: float) -> list[str]:
    """Staging of runs that never committed, seen by two passes `days` apart."""
    state = json.loads(store.get_bytes(STATE) or b"{}")
    first_seen: dict[str, str] = state.get("staging_first_seen", {})
    holder = RunLease(store, "", "").current()
    live_holder = holder.holder if holder and holder.live(time.time()) else None
    staged = lake.staged_runs()
    dropped = []
    for run_key in staged:
        seen = datetime.fromisoformat(first_seen.setdefault(run_key, now.isoformat()))
        if run_key == live_holder or lake.committed_run(run_key) is not None:
            continue  # running now, or committed (recover publishes and drops it)
        if now - seen >= timedelta(days=days):
            for key in list(store.list(f"{STAGING}{run_key}/")):
                store.delete(key)
            dropped.append(run_key)
    state["staging_first_seen"] = {
        k: v for k, v in first_seen.items() if k in staged and k not in dropped
    }
    store.put_bytes(STATE, json.dumps(state, sort_keys=True).encode())
    return dropped


def _expire_raw(store: Store, lake: Lake, now: datetime, days: float) -> int:
    """WARC files of ingest days older than `days` (default: kept for good). Their rows stay;
    `ingest reextract` counts them as without a raw record. Days are taken from the table's
    partitions, and a day once expired is remembered, so nothing lists all of raw/."""
    state = json.loads(store.get_bytes(STATE) or b"{}")
    done = state.get("raw_expired_through", "")
    cutoff = (now - timedelta(days=days)).date()
    expired = 0
    for day in partition_days(lake.articles(), None, cutoff - timedelta(days=1)):
        if day <= done:
            continue
        for key in list(store.list(f"{RAW}ingest_date={day}/")):
            store.delete(key)
            expired += 1
        done = day
    state["raw_expired_through"] = done
    store.put_bytes(STATE, json.dumps(state, sort_keys=True).encode())
    return expired


def _expire_reports(store: Store, now: datetime, days: float) -> int:
    """Run reports are a convenience copy (the commit keeps its own): kept `days` days."""
    cutoff = (now - timedelta(days=days)).date().isoformat()
    expired = 0
    for key in list(store.list(REPORTS)):
        day = key[len(REPORTS) :].split("/", 1)[0].removeprefix("date=")
        if len(day) == 10 and day < cutoff:
            store.delete(key)
            expired += 1
    return expired
