"""bench/bench_airflow.py runs as documented on a few real pages: every case commits the
pages it was given, under the real scheduler and through the CLI, and reports what it
measured (not its speed: a benchmark, not a timed test)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.bench import run_bench


def test_the_airflow_benchmark_runs_every_case(tmp_path: Path) -> None:
    done, result = run_bench(
        "bench_airflow.py",
        ["--pages", "3", "--repeat", "1", "--publishers", "3", "--timeout", "300"],
        tmp_path / "bench.json",
        timeout=1200,
    )
    cases = result["cases"]
    assert set(cases) == {
        "DAG, 3 pages, default shards",
        "DAG, 3 pages, 1 shard",
        "CLI, 3 pages",
        "DAG, 1 page, 1 shard",
        "CLI, 1 page",
    }
    # the same pages give the same articles however they run (a page may be rejected)
    assert 1 <= cases["CLI, 3 pages"]["articles"] <= 3
    for label, row in cases.items():
        cli = cases["CLI, 1 page" if "1 page" in label else "CLI, 3 pages"]
        assert row["articles"] == cli["articles"], (label, row)
        assert row["to_commit"] > 0, (label, row)
        if label.startswith("DAG"):
            assert row["to_commit"] < row["to_end"], (label, row)
        else:
            assert row["to_commit"] < row["wall"], (label, row)
    assert "CLI, 3 pages" in done.stdout
