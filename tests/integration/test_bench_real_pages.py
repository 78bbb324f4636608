"""bench/bench_real_pages.py runs as documented on a few real pages: both sides process
every page, and the numbers it reports are the ones it measured (not its speed: a
benchmark, not a timed test)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.bench import run_bench


def test_the_real_page_benchmark_runs_both_sides_over_every_page(tmp_path: Path) -> None:
    done, result = run_bench(
        "bench_real_pages.py",
        ["--sets", "sample", "--sample", "6", "--pairs", "1", "--publishers", "2"],
        tmp_path / "bench.json",
        timeout=600,
    )
    sample = result["sample"]
    assert sample["pages"] == 6
    assert sample["plain_documents"] == [6]
    assert sample["articles"][0] is not None and 1 <= sample["articles"][0] <= 6
    assert sample["first_request_median_s"] is not None
    assert 0 < sample["first_request_median_s"] < sample["pipeline_median_s"]
    measured = sample["plain_median_s"] / sample["pipeline_median_s"]  # medians rounded to 0.01
    assert abs(sample["ratio"] - measured) < 0.02
    pair = sample["plain_runs_s"][0] / sample["pipeline_runs_s"][0]  # one pair: its own ratio
    assert abs(sample["ratio_of_pairs_median"] - pair) < 0.02
    assert "sample" in done.stdout and "ratio" in done.stdout


def test_a_baseline_engine_is_timed_in_the_same_rounds(tmp_path: Path) -> None:
    """--baseline-src runs the pipeline a third time per round with the given src/ (here the
    same engine), and the reported speedup is the median of its rounds' ratios."""
    src = Path(__file__).resolve().parents[2] / "src"
    args = ["--sets", "sample", "--sample", "4", "--pairs", "3", "--publishers", "1"]
    done, result = run_bench(
        "bench_real_pages.py",
        [*args, "--baseline-src", str(src)],
        tmp_path / "bench.json",
        timeout=600,
    )
    sample = result["sample"]
    assert sample["baseline_articles"] == sample["articles"]
    assert len(sample["baseline_runs_s"]) == len(sample["pipeline_runs_s"]) == 3
    rounds = sorted(
        b / p for b, p in zip(sample["baseline_runs_s"], sample["pipeline_runs_s"], strict=True)
    )
    assert abs(sample["speedup_over_baseline"] - rounds[1]) < 0.02  # runs rounded to 0.01
    assert "baseline" in done.stdout
