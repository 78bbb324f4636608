"""The run textfile for node_exporter: every value read back through Prometheus's parser."""

from __future__ import annotations

import math
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ingest.metrics import (
    TextfileError,
    check_textfile_path,
    failed_run_metrics,
    freshness,
    public_store,
    run_metrics,
    write_textfile,
)
from ingest.report import RunReport

STARTED = datetime(2025, 3, 4, 5, 0, 0, tzinfo=UTC)
COMMITTED = STARTED + timedelta(seconds=42)
ENDED = COMMITTED + timedelta(seconds=1)

GAUGES = {
    "newsflow_run_success",
    "newsflow_run_last_run_timestamp_seconds",
    "newsflow_run_last_success_timestamp_seconds",
    "newsflow_run_duration_seconds",
    "newsflow_run_feeds",
    "newsflow_run_feeds_malformed",
    "newsflow_run_entries",
    "newsflow_run_entries_skipped",
    "newsflow_run_entries_rejected",
    "newsflow_run_skips",
    "newsflow_run_rejects",
    "newsflow_run_pages_fetched",
    "newsflow_run_articles_extracted",
    "newsflow_run_articles_written",
    "newsflow_run_articles_dropped_at_commit",
    "newsflow_run_received_bytes",
    "newsflow_run_notifications",
}
SUMMARY = "newsflow_run_publication_to_commit_seconds"
BY_ARRIVAL = "newsflow_run_publication_to_commit_by_arrival_seconds"
SUMMARIES = {SUMMARY, BY_ARRIVAL}


def committed_report(store: str = "s3://news/lake", latencies: list[float] | None = None) -> dict:
    """A report as the commit stores it: filled the way Run._account_poll, Run._select,
    run.page.route and lake.commit._finish_report fill it (5 feeds: 3 polled, one of them
    malformed, 1 not modified, 1 failed, plus 1 disabled), then `freshness_seconds` as the
    commit is to add it."""
    report = RunReport(
        run_id="20250304T050000Z-abc123", store=store, started_at=STARTED.isoformat()
    )
    report.feeds_total = 6
    report.feeds_disabled = 1
    report.feeds_polled, report.feeds_not_modified, report.feeds_failed = 3, 1, 1
    report.feeds_malformed = 1
    report.failed_feeds = {"down": "http_503 (503)"}
    report.entries_seen = 20
    report.skips = Counter({"no_link": 1, "already_seen": 4, "duplicate_in_run": 2})
    report.rejects = Counter({"timeout": 2, "too_short": 3, "feed:http_503": 1})
    report.pages_fetched = 11
    report.articles_extracted = 8
    report.bytes_received = 123_456
    report.seconds = 41.5
    data = report.to_dict()
    data.update(
        articles_written=7,
        duplicates_dropped_at_commit=1,
        finished_at=COMMITTED.isoformat(),
        table_version=12,
    )
    if latencies is not None:
        data["freshness_seconds"] = freshness(latencies)
        # the first two arrived by push
        data["freshness_by_arrival"] = {
            "push": freshness(latencies[:2]),
            "poll": freshness(latencies[2:]),
        }
        data["notifications"] = 2
    return data


def read_back(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float | str]:
    """Every sample of the file, keyed by name and labels, through the official parser
    (NaN as the string "NaN", so that whole files compare equal)."""
    return {
        (s.name, frozenset(s.labels.items())): "NaN" if math.isnan(s.value) else s.value
        for family in text_string_to_metric_families(path.read_text("utf-8"))
        for s in family.samples
    }


def families(path: Path) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(path.read_text("utf-8"))}


def key(name: str, store: str = "s3://news/lake", **labels: str) -> tuple[str, frozenset]:
    return name, frozenset({"store": store, **labels}.items())


def export(tmp_path: Path, report: Any, now: datetime = ENDED) -> Path:
    path = tmp_path / "newsflow.prom"
    write_textfile(path, run_metrics(report, now=now))
    return path


def test_every_series_reads_back_with_its_exact_value(tmp_path: Path) -> None:
    path = export(tmp_path, committed_report(latencies=[30, 600, 60, 7200, 120, 90, 45]))
    got = read_back(path)
    assert got == {
        key("newsflow_run_success"): 1,
        key("newsflow_run_last_run_timestamp_seconds"): ENDED.timestamp(),
        key("newsflow_run_last_success_timestamp_seconds"): COMMITTED.timestamp(),
        key("newsflow_run_duration_seconds"): 41.5,
        key("newsflow_run_feeds", outcome="polled"): 3,
        key("newsflow_run_feeds", outcome="not_modified"): 1,
        key("newsflow_run_feeds", outcome="failed"): 1,
        key("newsflow_run_feeds", outcome="disabled"): 1,
        key("newsflow_run_feeds", outcome="not_due"): 0,
        key("newsflow_run_feeds_malformed"): 1,
        key("newsflow_run_entries"): 20,
        key("newsflow_run_entries_skipped"): 7,
        key("newsflow_run_entries_rejected"): 5,  # the failed feed is not an entry
        key("newsflow_run_skips", reason="no_link"): 1,
        key("newsflow_run_skips", reason="already_seen"): 4,
        key("newsflow_run_skips", reason="duplicate_in_run"): 2,
        key("newsflow_run_rejects", reason="timeout"): 2,
        key("newsflow_run_rejects", reason="too_short"): 3,
        key("newsflow_run_rejects", reason="feed:http_503"): 1,
        key("newsflow_run_pages_fetched"): 11,
        key("newsflow_run_articles_extracted"): 8,
        key("newsflow_run_articles_written"): 7,
        key("newsflow_run_articles_dropped_at_commit"): 1,
        key("newsflow_run_received_bytes"): 123_456,
        # nearest rank over 30, 45, 60, 90, 120, 600, 7200
        key(SUMMARY, quantile="0.5"): 90,
        key(SUMMARY, quantile="0.9"): 7200,
        key(SUMMARY, quantile="1"): 7200,
        key(SUMMARY + "_count"): 7,
        key(SUMMARY + "_sum"): 8145,
        key("newsflow_run_notifications"): 2,
        # push: 30 and 600; poll: 60, 7200, 120, 90, 45
        key(BY_ARRIVAL, arrival="push", quantile="0.5"): 30,
        key(BY_ARRIVAL, arrival="push", quantile="0.9"): 600,
        key(BY_ARRIVAL, arrival="push", quantile="1"): 600,
        key(BY_ARRIVAL + "_count", arrival="push"): 2,
        key(BY_ARRIVAL + "_sum", arrival="push"): 630,
        key(BY_ARRIVAL, arrival="poll", quantile="0.5"): 90,
        key(BY_ARRIVAL, arrival="poll", quantile="0.9"): 7200,
        key(BY_ARRIVAL, arrival="poll", quantile="1"): 7200,
        key(BY_ARRIVAL + "_count", arrival="poll"): 5,
        key(BY_ARRIVAL + "_sum", arrival="poll"): 7515,
    }
    assert families(path) == {
        **dict.fromkeys(GAUGES, "gauge"),
        **dict.fromkeys(SUMMARIES, "summary"),
    }


def test_a_run_report_and_its_dict_export_the_same(tmp_path: Path) -> None:
    data = committed_report()
    as_dict, as_report = tmp_path / "dict", tmp_path / "report"
    as_dict.mkdir()
    as_report.mkdir()
    assert read_back(export(as_dict, data)) == read_back(
        export(as_report, RunReport.from_dict(data))
    )


def test_a_quiet_run_exports_every_metric_at_zero(tmp_path: Path) -> None:
    """Absence alerts must mean "no run wrote the file", never "nothing new"."""
    quiet = RunReport(run_id="r", store="s3://news/lake", started_at=STARTED.isoformat())
    quiet.feeds_total = quiet.feeds_not_modified = 2
    data = quiet.to_dict() | {
        "finished_at": COMMITTED.isoformat(),
        "freshness_seconds": freshness([]),
    }
    path = export(tmp_path, data)
    got = read_back(path)

    assert set(families(path)) == GAUGES | SUMMARIES
    unlabelled = GAUGES - {
        "newsflow_run_feeds",
        "newsflow_run_skips",
        "newsflow_run_rejects",
        "newsflow_run_success",
        "newsflow_run_last_run_timestamp_seconds",
        "newsflow_run_last_success_timestamp_seconds",
    }
    for name in unlabelled:
        assert got[key(name)] == 0, name
    outcomes = {"polled": 0, "not_modified": 2, "not_due": 0, "failed": 0, "disabled": 0}
    for outcome, n in outcomes.items():
        assert got[key("newsflow_run_feeds", outcome=outcome)] == n
    assert got[key(SUMMARY + "_count")] == 0 and got[key(SUMMARY + "_sum")] == 0
    for q in ("0.5", "0.9", "1"):  # present, and NaN: 0 would claim perfectly fresh articles
        assert got[key(SUMMARY, quantile=q)] == "NaN"


def test_a_report_without_freshness_still_exports_the_summary(tmp_path: Path) -> None:
    """Reports committed before the field existed (read back by `already_committed`)."""
    got = read_back(export(tmp_path, committed_report(latencies=None)))
    assert got[key(SUMMARY + "_count")] == 0
    assert got[key(SUMMARY, quantile="0.9")] == "NaN"
    assert got[key("newsflow_run_articles_written")] == 7


def test_freshness_is_nearest_rank_and_json_safe() -> None:
    assert freshness([10.0, 20.0, 30.0, 40.0]) == {
        "count": 4,
        "sum": 100.0,
        "p50": 20.0,
        "p90": 40.0,
        "max": 40.0,
    }
    # a publication time ahead of the commit clock counts as no delay at all
    assert freshness([-5.0, 1.0]) == {"count": 2, "sum": 1.0, "p50": 0.0, "p90": 1.0, "max": 1.0}
    assert freshness([]) == {"count": 0, "sum": 0.0, "p50": None, "p90": None, "max": None}
    assert freshness([12.3456789])["p50"] == 12.346


def test_label_values_with_quotes_newlines_and_backslashes_parse_back(tmp_path: Path) -> None:
    store = 's3://bucket/a "quoted" \\ prefix\nnext'
    reason = 'odd "reason"\\with\nnewline'
    data = committed_report(store=store) | {"rejects": {reason: 4}}
    path = export(tmp_path, data)
    text = path.read_text("utf-8")
    assert '\\"quoted\\"' in text and "\\n" in text  # escaped on disk, one line per sample
    got = read_back(path)
    assert got[key("newsflow_run_rejects", store=store, reason=reason)] == 4
    assert all(dict(labels)["store"] == store for _, labels in got)


def test_store_label_carries_no_credentials(tmp_path: Path) -> None:
    assert public_store("s3://AKIA:s3cr3t@news/lake?token=x#f") == "s3://news/lake"
    assert public_store("s3://news/lake") == "s3://news/lake"
    assert public_store("s3://news") == "s3://news"
    assert public_store("file:///srv/newsflow/lake?x=1") == "file:///srv/newsflow/lake"
    assert public_store("/srv/newsflow/lake") == "/srv/newsflow/lake"
    path = export(tmp_path, committed_report(store="s3://AKIA:s3cr3t@news/lake"))
    assert "s3cr3t" not in path.read_text("utf-8") and "AKIA" not in path.read_text("utf-8")
    assert {dict(labels)["store"] for _, labels in read_back(path)} == {"s3://news/lake"}


def test_the_global_registry_is_left_alone() -> None:
    before = generate_latest(REGISTRY).decode()
    first = run_metrics(committed_report())
    second = run_metrics(committed_report())  # no duplicate-series clash: a fresh registry
    assert isinstance(first, CollectorRegistry) and first is not second is not REGISTRY
    assert "newsflow_run_" not in generate_latest(REGISTRY).decode()
    assert generate_latest(REGISTRY).decode().count("\n") == before.count("\n")


def test_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = export(tmp_path, committed_report())
    inode = path.stat().st_ino
    export(tmp_path, committed_report() | {"articles_written": 9})
    assert os.listdir(tmp_path) == ["newsflow.prom"]
    assert path.stat().st_ino != inode  # renamed into place, not rewritten in place
    assert read_back(path)[key("newsflow_run_articles_written")] == 9


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = export(tmp_path, committed_report())
    old = path.read_text("utf-8")

    class Broken:
        def collect(self) -> list:
            raise RuntimeError("collector failed half-way")

    registry = CollectorRegistry()
    registry.register(Broken())
    with pytest.raises(RuntimeError):
        write_textfile(path, registry)
    assert os.listdir(tmp_path) == ["newsflow.prom"] and path.read_text("utf-8") == old


def test_a_missing_directory_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "no-such-dir" / "newsflow.prom"
    with pytest.raises(TextfileError) as caught:
        write_textfile(path, run_metrics(committed_report()))
    message = str(caught.value)
    assert str(path) in message and "does not exist" in message and "\n" not in message
    assert not path.parent.exists()
    with pytest.raises(OSError):  # callers may catch it as the OSError it is
        check_textfile_path(path)


def test_a_path_the_collector_would_ignore_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TextfileError, match=r"must end in \.prom"):
        check_textfile_path(tmp_path / "newsflow.txt")
    (tmp_path / "dir.prom").mkdir()
    with pytest.raises(TextfileError, match="is a directory"):
        check_textfile_path(tmp_path / "dir.prom")
    assert check_textfile_path(str(tmp_path / "ok.prom")) == tmp_path / "ok.prom"


def test_a_failed_run_keeps_the_last_success_and_drops_the_counters(tmp_path: Path) -> None:
    path = export(tmp_path, committed_report())
    failed_at = ENDED + timedelta(hours=1)
    write_textfile(path, failed_run_metrics("s3://news/lake", previous=path, now=failed_at))
    assert read_back(path) == {
        key("newsflow_run_success"): 0,
        key("newsflow_run_last_run_timestamp_seconds"): failed_at.timestamp(),
        key("newsflow_run_last_success_timestamp_seconds"): COMMITTED.timestamp(),
    }
    # a second failure still knows the last success
    write_textfile(path, failed_run_metrics("s3://news/lake", previous=path, now=failed_at))
    assert read_back(path)[key("newsflow_run_last_success_timestamp_seconds")] == (
        COMMITTED.timestamp()
    )


@pytest.mark.parametrize("previous", ["missing", "garbage", "other-store"])
def test_a_failed_run_without_a_known_success_exports_zero(tmp_path: Path, previous: str) -> None:
    path = tmp_path / "newsflow.prom"
    if previous == "garbage":
        path.write_text("this is {not a textfile\n")
    elif previous == "other-store":
        export(tmp_path, committed_report(store="/srv/other"))
    write_textfile(path, failed_run_metrics("s3://news/lake", previous=path, now=ENDED))
    got = read_back(path)
    assert got[key("newsflow_run_last_success_timestamp_seconds")] == 0
    assert got[key("newsflow_run_success")] == 0


def test_a_replayed_committed_run_keeps_its_commit_time(tmp_path: Path) -> None:
    """Running a committed run id again returns its old report: success stays when it was."""
    later = ENDED + timedelta(days=1)
    got = read_back(export(tmp_path, committed_report() | {"already_committed": True}, later))
    assert got[key("newsflow_run_last_success_timestamp_seconds")] == COMMITTED.timestamp()
    assert got[key("newsflow_run_last_run_timestamp_seconds")] == later.timestamp()
