"""The `ingest` command as a user runs it: exit codes and one clear line on errors."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fixture_server import FixtureServer, Route, article_html, paragraphs, rss

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).parents[1] / "src")


def ingest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, full_env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and text in errors[0], result.stderr


@pytest.fixture
def feeds_file(tmp_path: Path):
    with FixtureServer().running() as srv:
        items = []
        for i in range(2):
            srv.add(f"/a/{i}", Route(article_html(f"Cli {i}", paragraphs(50 + i)).encode()))
            items.append({"title": f"Cli {i}", "link": srv.url(f"/a/{i}")})
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        path = tmp_path / "feeds.yaml"
        path.write_text(f"feeds:\n  - name: cli\n    url: {srv.url('/f.xml')}\n")
        yield path


def test_run_prints_summary_and_exits_zero(feeds_file: Path, tmp_path: Path) -> None:
    result = ingest(
        "run",
        "--feeds",
        str(feeds_file),
        "--store",
        str(tmp_path / "s"),
        "--allow-network",
        "127.0.0.0/8",
        "--run-id",
        "cli-1",
    )
    assert result.returncode == 0, result.stderr
    assert "run cli-1" in result.stdout and "articles        2 written" in result.stdout
    assert (tmp_path / "s" / "_reports" / "cli-1.json").is_file()
    again = ingest(
        "run",
        "--feeds",
        str(feeds_file),
        "--store",
        str(tmp_path / "s"),
        "--allow-network",
        "127.0.0.0/8",
        "--run-id",
        "cli-1",
    )
    assert again.returncode == 0 and "already committed" in again.stdout


def test_allow_network_from_environment(feeds_file: Path, tmp_path: Path) -> None:
    result = ingest(
        "run",
        "--feeds",
        str(feeds_file),
        "--store",
        str(tmp_path / "s"),
        env={"INGEST_ALLOW_NETWORKS": "127.0.0.0/8"},
    )
    assert result.returncode == 0 and "2 written" in result.stdout
    blocked = ingest("run", "--feeds", str(feeds_file), "--store", str(tmp_path / "t"))
    assert blocked.returncode == 0  # the run completed; the feed failed, and says why
    assert "blocked_address" in blocked.stdout


def test_bad_flag(tmp_path: Path) -> None:
    result = ingest("run", "--feeds", "x.yaml", "--store", str(tmp_path), "--workers", "zero")
    assert result.returncode == 2 and "--workers: not an integer: 'zero'" in result.stderr
    result = ingest("run", "--store", str(tmp_path))
    assert result.returncode == 2 and "--feeds" in result.stderr
    result = ingest("run", "--feeds", "x", "--store", str(tmp_path), "--allow-network", "lan")
    assert_one_line_error(result, "not a network in CIDR form: 'lan'")


def test_bad_feeds_file(tmp_path: Path) -> None:
    bad = tmp_path / "feeds.yaml"
    bad.write_text("feeds:\n  - name: a\n    url: https://x.example/a\n  - name: b\n")
    result = ingest("run", "--feeds", str(bad), "--store", str(tmp_path / "s"))
    assert_one_line_error(result, "feed #2 ('b'): 'url' is required")
    assert not (tmp_path / "s").exists()  # nothing touched the store


def test_store_unreachable_or_missing_bucket(feeds_file: Path, s3_bucket) -> None:
    endpoint, _ = s3_bucket
    down = {**endpoint.env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}
    result = ingest("run", "--feeds", str(feeds_file), "--store", "s3://b/x", env=down)
    assert_one_line_error(result, "object store unreachable at http://127.0.0.1:1")
    result = ingest(
        "run", "--feeds", str(feeds_file), "--store", "s3://missing-bucket/x", env=endpoint.env()
    )
    assert_one_line_error(result, "bucket 'missing-bucket' does not exist")


def test_bad_run_id(feeds_file: Path, tmp_path: Path) -> None:
    result = ingest(
        "run", "--feeds", str(feeds_file), "--store", str(tmp_path), "--run-id", "x" * 300
    )
    assert_one_line_error(result, "run id must be 1 to 200 characters")


def test_demo_on_local_store_then_again(tmp_path: Path) -> None:
    store = tmp_path / "data"
    with socket.socket() as sock:  # a free port, the same for both runs
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    first = ingest("demo", "--store", str(store), "--no-progress", "--port", port)
    assert first.returncode == 0, first.stderr
    assert re.search(r"articles\s+18 written", first.stdout), first.stdout
    assert "18 articles in 1 Parquet files" in first.stdout
    assert "SELECT published_at, source, title FROM read_parquet(" in first.stdout
    second = ingest("demo", "--store", str(store), "--no-progress", "--port", port)
    assert second.returncode == 0, second.stderr
    assert re.search(r"articles\s+0 written", second.stdout), second.stdout
    assert "18 articles in 1 Parquet files" in second.stdout


def test_demo_on_embedded_s3() -> None:
    result = ingest("demo", "--s3", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "embedded S3 (SeaweedFS) at http://127.0.0.1:" in result.stdout
    assert "18 articles in 1 Parquet files: s3://newsflow/demo/articles/**/*.parquet" in (
        result.stdout
    )


def test_index_and_ddl_commands(feeds_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "s"
    result = ingest(
        "run", "--feeds", str(feeds_file), "--store", str(store), "--allow-network", "127.0.0.1/32"
    )
    assert result.returncode == 0, result.stderr
    day = re.search(r"dates touched\s+(\d{4}-\d\d-\d\d)", result.stdout).group(1)
    built = ingest("index", "--store", str(store))
    assert built.returncode == 0, built.stderr
    assert f"{day}: 2 stories" in built.stdout
    assert (store / f"index/date={day}/latest-news.html").is_file()
    again = ingest("index", "--store", str(store), "--date", "2020-01-01")
    assert again.returncode == 0 and "2020-01-01: 0 stories" in again.stdout
    bad = ingest("index", "--store", str(store), "--date", "yesterday")
    assert bad.returncode == 2 and "not a date in YYYY-MM-DD form: 'yesterday'" in bad.stderr
    ddl = ingest("ddl", "--dialect", "duckdb", "--store", str(store))
    assert ddl.returncode == 0 and f"'{store}/articles/**/*.parquet'" in ddl.stdout
    assert ingest("ddl", "--dialect", "oracle").returncode == 2
