"""Feed health and run health, pure: the error column, thresholds and messages, stale feeds,
and which errors no retry fixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ingest.store import LocalStore


def test_error_column_is_cut_between_words() -> None:
    from ingest.health import clip_words

    error = "connection refused by the publisher's load balancer after 3 attempts " * 3
    cut = clip_words(error, 80)
    assert len(cut) <= 80 and cut.endswith("…")
    assert error.startswith(cut[:-1]) and error[len(cut) - 1] == " "  # a whole word last
    assert clip_words("short\nand\tsimple", 80) == "short and simple"
    assert clip_words("x" * 200, 80) == "x" * 79 + "…"  # one long word: cut, marked


def test_run_health_thresholds_and_message(tmp_path) -> None:
    from ingest.health import run_health

    failed = {"b": "http_404: gone", "a": "connect: connection refused"}
    report = {"feeds_total": 10, "feeds_disabled": 0, "failed_feeds": failed}
    strict = run_health(report)  # default: any failed feed
    assert strict.unhealthy and strict.reasons == ["2 of 10 feeds failed (20%)"]
    assert strict.message().startswith("2 of 10 feeds failed (20%) | failed: a (connect: ")
    assert "b (http_404: gone)" in strict.message()
    assert not run_health(report, max_failed=2).unhealthy
    assert run_health(report, max_failed=None, max_failed_percent=20).unhealthy
    assert not run_health(report, max_failed=None, max_failed_percent=25).unhealthy
    healthy = run_health({"feeds_total": 3, "failed_feeds": {}})
    assert not healthy.unhealthy and healthy.message() == "all feeds healthy"
    many = {"feeds_total": 30, "failed_feeds": {f"f{i:02}": "http_500" for i in range(15)}}
    assert run_health(many).message(limit=10).count("http_500") == 10
    assert "and 5 more" in run_health(many).message(limit=10)


def test_run_health_counts_stale_feeds_of_the_run_only(tmp_path) -> None:
    from ingest.health import run_health
    from ingest.state import write_feed_states

    store = LocalStore(tmp_path)
    old = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    fresh = datetime.now(UTC).isoformat()
    write_feed_states(store, {
        "quiet": {"name": "quiet", "url": "https://q.example/", "last_success_at": fresh,
                  "last_new_article_at": old},
        "busy": {"name": "busy", "url": "https://b.example/", "last_success_at": fresh,
                 "last_new_article_at": fresh},
        "dropped": {"name": "dropped", "url": "https://d.example/", "last_new_article_at": old},
    })  # fmt: skip
    report = {"feeds_total": 2, "failed_feeds": {}}
    verdict = run_health(report, store, feeds=["quiet", "busy"], stale_after=timedelta(hours=48),
                         max_stale=0)  # fmt: skip
    assert verdict.stale == ["quiet"] and verdict.reasons == ["1 feeds stale"]
    assert "stale: quiet" in verdict.message()
    assert not run_health(report, store, feeds=["quiet", "busy"],
                          stale_after=timedelta(hours=48), max_stale=1).unhealthy  # fmt: skip


def test_permanent_errors_are_the_ones_no_retry_can_fix() -> None:
    from ingest.config import ConfigError
    from ingest.errors import permanent
    from ingest.lease import StoreBusy
    from ingest.state import StateFileError
    from ingest.store import StoreError, StoreMissing, StoreUnusable

    for exc in (ConfigError("nmae"), StateFileError("bad"), StoreUnusable("no bucket"),
                StoreMissing("typo")):  # fmt: skip
        assert permanent(exc), exc
    for exc in (StoreError("write failed"), StoreBusy("held"), TimeoutError(), OSError(5, "io"),
                RuntimeError("worker died")):  # fmt: skip
        assert not permanent(exc), exc
