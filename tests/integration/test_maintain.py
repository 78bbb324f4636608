"""`ingest maintain`: staging and report retention, idempotence, and a kill -9 mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.lake import Lake, read_committed
from ingest.lake.maintain import maintain
from ingest.lease import RunLease
from ingest.store import Store, open_store
from tests.helpers.lake import stage

SRC = str(Path(__file__).parents[2] / "src")


def test_abandoned_staging_goes_after_two_passes_running_runs_stay(store: Store) -> None:
    Lake(store).commit(stage(store, "done", [1]))
    stage(store, "abandoned", [2])
    stage(store, "running", [3])
    lease = RunLease(store, "running", "running", ttl=600)
    lease.acquire()
    lease.stop_heartbeat()
    now = datetime.now(UTC)
    first = maintain(store, now=now)
    assert first.staging_dropped == []  # first seen now
    second = maintain(store, now=now + timedelta(days=3))
    assert second.staging_dropped == ["abandoned"]
    staged = {k.split("/")[1] for k in store.list("_staging/")}
    assert staged == {"running"}  # it holds the lease: never touched
    assert read_committed(store).num_rows == 1


def test_reports_expire_by_day_and_commits_keep_their_own(store: Store) -> None:
    from ingest.run import previous_report

    Lake(store).commit(stage(store, "old", [1]))  # report dated 2025-12-18 by the helper
    assert len(list(store.list("_reports/"))) == 1
    result = maintain(store, report_days=30, now=datetime(2026, 3, 1, tzinfo=UTC))
    assert result.reports_expired == 1 and not list(store.list("_reports/"))
    assert previous_report(store, "old").articles_written == 1


def test_maintenance_beside_committing_runs_and_a_reader(store: Store) -> None:
    """Compaction and vacuum while runs commit: every commit lands, readers never see a
    missing file or a row twice."""
    for i in range(6):
        Lake(store).commit(stage(store, f"pre{i}", [100 + i]))
    stop = threading.Event()
    problems: list[str] = []

    def read_forever() -> None:
        while not stop.is_set():
            try:
                seen = read_committed(store)["article_id"].to_pylist()
                if len(seen) != len(set(seen)):
                    problems.append("duplicate row")
            except Exception as exc:  # a missing file would surface here
                problems.append(repr(exc))

    def commit_some() -> None:
        for i in range(6):
            Lake(store).commit(stage(store, f"during{i}", [200 + i, 100 + i]))

    reader = threading.Thread(target=read_forever)
    writer = threading.Thread(target=commit_some)
    reader.start()
    writer.start()
    for _ in range(3):
        maintain(store, retention_hours=1)
    writer.join()
    stop.set()
    reader.join()
    assert problems == []
    final = read_committed(store)["article_id"].to_pylist()
    assert len(final) == len(set(final)) == 12


@pytest.mark.timeout(300)
def test_kill_minus_nine_during_maintenance_loses_nothing(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    store = open_store(f"s3://{bucket}/lake")
    for i in range(12):  # many small commits: compaction has work to do
        Lake(store).commit(stage(store, f"r{i}", [i * 2, i * 2 + 1]))
    expected = sorted(read_committed(store)["article_id"].to_pylist())
    env = {**os.environ, **endpoint.env(), "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "ingest.cli", "maintain", "--store", store.uri]
    for delay in (0.3, 0.8, 1.5):
        proc = subprocess.Popen([*cmd, "--retention-hours", "1"], env=env, start_new_session=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert sorted(read_committed(store)["article_id"].to_pylist()) == expected
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(read_committed(store)["article_id"].to_pylist()) == expected
    # and ingest goes on as before: a new commit, nothing doubled
    Lake(store).commit(stage(store, "after", [0, 99]))
    final = read_committed(store)["article_id"].to_pylist()
    assert len(final) == len(set(final)) == len(expected) + 1


def test_run_commits_leave_expired_log_entries_to_maintenance(store: Store) -> None:
    """Expiring log entries lists all of `_delta_log/`, a cost that grows with history:
    a run's commit must not do it, the daily maintenance does."""
    for i in range(3):
        Lake(store).commit(stage(store, f"early{i}", [300 + i]))
    table = Lake(store).articles()
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 seconds"})
    table.create_checkpoint()  # entries before a checkpoint are the expirable ones
    time.sleep(1.1)

    def commits() -> list[str]:
        return sorted(k for k in store.list("articles/_delta_log/") if k.endswith(".json"))

    before = commits()
    Lake(store).commit(stage(store, "late", [400]))
    after_run = commits()
    assert after_run[: len(before)] == before  # nothing expired by the run's commit
    assert len(after_run) == len(before) + 1
    maintain(store)
    after_maintenance = commits()
    assert before[0] not in after_maintenance  # expired by maintenance
    assert len(after_maintenance) < len(after_run)
    assert read_committed(store).num_rows == 4  # and every row still reads
