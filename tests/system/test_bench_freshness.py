"""bench/bench_freshness.py runs as documented on a few stories: every story of both sites
is committed once, the push site's by push, and the latencies are reported (not judged:
a benchmark, not a timed test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.bench import run_bench


@pytest.mark.timeout(1200)
def test_the_freshness_benchmark_measures_push_and_poll(tmp_path: Path) -> None:
    done, result = run_bench(
        "bench_freshness.py",
        ["--stories", "3", "--minutes", "0.5", "--poll-cron", "* * * * *"],
        tmp_path / "freshness.json",
        timeout=1100,
    )
    assert result["missing"] == [] and result["rows"] == result["expected_rows"] == 8
    assert result["push_site"]["count"] == result["poll_site"]["count"] == 3
    assert result["push_site_arrivals"].get("push", 0) >= 1
    for site in ("push_site", "poll_site"):
        s = result[site]
        assert 0 < s["p50"] <= s["p95"] <= s["max"], (site, s)
    assert "push_site" in done.stdout and "poll_site" in done.stdout
