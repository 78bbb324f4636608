"""The `ingest` command as a user runs it: exit codes and one clear line on errors."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.state import FEEDS
from ingest.store import LocalStore, Store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss, slow_page

SRC = str(Path(__file__).parents[2] / "src")


def cli_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This checkout's engine on the path, plus the given variables."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, full_env.get("PYTHONPATH")]))
    return full_env


def ingest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ingest.cli", *args],
        env=cli_env(env),
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
    assert len(list((tmp_path / "s" / "_reports").glob("date=*/cli-1.json"))) == 1
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
    assert f"18 articles in the Delta table {store}/articles" in first.stdout
    assert f"SELECT published_at, source, title FROM delta_scan('{store}/articles')" in (
        first.stdout
    )
    second = ingest("demo", "--store", str(store), "--no-progress", "--port", port)
    assert second.returncode == 0, second.stderr
    assert re.search(r"articles\s+0 written", second.stdout), second.stdout
    assert "18 articles in the Delta table" in second.stdout


def test_demo_on_embedded_s3() -> None:
    result = ingest("demo", "--s3", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "embedded S3 (SeaweedFS) at http://127.0.0.1:" in result.stdout
    assert "18 articles in the Delta table s3://newsflow/demo/articles" in result.stdout


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
    assert ddl.returncode == 0 and f"delta_scan('{store}/articles')" in ddl.stdout
    assert ingest("ddl", "--dialect", "oracle").returncode == 2


# `python -m ingest.cli` as the console script runs it, reporting at the very end how many
# objects the interpreter's last garbage collection was told to leave alone
EXIT_PROBE = """
import atexit, gc, runpy, sys
atexit.register(lambda: print("frozen", gc.get_freeze_count(), file=sys.stderr))
sys.argv = ["ingest", *sys.argv[1:]]
runpy.run_module("ingest.cli", run_name="__main__")
"""


def test_the_program_ends_without_a_last_collection_and_keeps_its_exit_status(
    feeds_file: Path, tmp_path: Path
) -> None:
    def program(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", EXIT_PROBE, *args],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    run = program(
        "run", "--feeds", str(feeds_file), "--store", str(tmp_path / "s"),
        "--allow-network", "127.0.0.1/32", "--no-progress",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "dates touched" in run.stdout  # everything printed is still written out
    assert int(re.search(r"^frozen (\d+)$", run.stderr, re.M).group(1)) > 1000
    missing = program("index", "--store", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "no newsflow store" in missing.stderr


def test_readers_refuse_a_store_that_does_not_exist(tmp_path: Path, s3_bucket) -> None:
    typo = tmp_path / "typo"
    for command in (["status"], ["index"], ["ddl", "--dialect", "duckdb"]):
        result = ingest(*command, "--store", str(typo))
        assert result.returncode == 1, (command, result.stderr)
        assert_one_line_error(result, f"no newsflow store at {typo}")
        assert not typo.exists()  # refused, not created
    # an existing directory that holds no store: refused too, and left untouched
    (tmp_path / "other").mkdir()
    result = ingest("status", "--store", str(tmp_path / "other"), "--fail-on-problems")
    assert_one_line_error(result, "no newsflow store at")
    assert list((tmp_path / "other").iterdir()) == []
    endpoint, bucket = s3_bucket
    result = ingest("status", "--store", f"s3://{bucket}/nothing-here", env=endpoint.env())
    assert_one_line_error(result, f"no newsflow store at s3://{bucket}/nothing-here")
    result = ingest("index", "--store", "s3://missing-bucket/x", env=endpoint.env())
    assert_one_line_error(result, "bucket 'missing-bucket' does not exist")


def test_status_follows_the_feeds_file_and_run_fails_on_feed_errors(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    store = tmp_path / "s"
    with FixtureServer().running() as srv:
        srv.add("/a", Route(article_html("Status story", paragraphs(77)).encode()))
        srv.add("/ok.xml", Route(rss([{"title": "a", "link": srv.url("/a")}]),
                                 content_type="application/rss+xml"))  # fmt: skip
        srv.add("/gone.xml", Route(b"gone", status=404))
        both = tmp_path / "both.yaml"
        both.write_text(f"feeds:\n  - name: ok\n    url: {srv.url('/ok.xml')}\n"
                        f"  - name: gone\n    url: {srv.url('/gone.xml')}\n")  # fmt: skip
        run = ["run", "--store", str(store), "--allow-network", "127.0.0.1/32", "--no-progress"]
        metrics_file = tmp_path / "newsflow.prom"
        half = ingest(*run, "--feeds", str(both), "--fail-on-feed-errors", "50",
                      "--metrics-file", str(metrics_file))  # fmt: skip
        assert half.returncode == 3, half.stderr
        assert "ingest: feed errors: 1 of 2 feeds failed (50%)" in half.stderr
        assert "gone (http_404" in half.stderr
        assert re.search(r"articles\s+1 written", half.stdout)  # committed all the same
        families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
        feeds = {s.labels["outcome"]: s.value for s in families["newsflow_run_feeds"].samples}
        assert feeds["failed"] == 1 and feeds["polled"] == 1
        written = families["newsflow_run_articles_written"].samples[0]
        assert written.value == 1 and written.labels == {"store": str(store)}
        # only when every feed failed, by default
        again = ingest(*run, "--feeds", str(both), "--fail-on-feed-errors")
        assert again.returncode == 0, again.stderr
        only_gone = tmp_path / "gone.yaml"
        only_gone.write_text(f"feeds:\n  - name: gone\n    url: {srv.url('/gone.xml')}\n")
        bad = ingest(*run, "--feeds", str(only_gone), "--fail-on-feed-errors")
        assert bad.returncode == 3 and "1 of 1 feeds failed (100%)" in bad.stderr
        assert ingest(*run, "--feeds", str(only_gone), "--fail-on-feed-errors", "0").returncode == 2
        assert ingest(*run, "--feeds", str(both), "--metrics-file", str(tmp_path / "x.txt")
                      ).returncode == 1  # fmt: skip

    # "gone" is dropped from the feeds file: removed, not failing forever
    only_ok = tmp_path / "ok.yaml"
    only_ok.write_text("feeds:\n  - name: ok\n    url: https://example.org/ok.xml\n"
                       "  - name: brand-new\n    url: https://example.org/new.xml\n")  # fmt: skip
    before = ingest("status", "--store", str(store), "--fail-on-problems")
    assert before.returncode == 3 and re.search(r"^gone\s+failing", before.stdout, re.M)
    assert re.search(r"^gone\s+failing .*http_404: http://127.0.0.1:\d+/gone.xml answered 404$",
                     before.stdout, re.M)  # fmt: skip
    after = ingest("status", "--store", str(store), "--feeds", str(only_ok), "--all",
                   "--fail-on-problems")  # fmt: skip
    assert after.returncode == 0, after.stdout
    assert re.search(r"^gone\s+removed", after.stdout, re.M)
    assert re.search(r"^brand-new\s+new", after.stdout, re.M)
    assert "3 feeds: 0 failing, 0 stale, 1 ok, 1 removed, 1 new" in after.stdout


def snapshot(store: Store) -> dict[str, str]:
    """Every object of the store with a hash of its bytes; on a local store also every
    directory and temp file (what a read must not create either)."""
    if isinstance(store, LocalStore):
        if not store.root.exists():
            return {}
        return {
            path.relative_to(store.root).as_posix(): (
                hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
            )
            for path in store.root.rglob("*")
        }
    return {k: hashlib.sha256(store.get_bytes(k) or b"").hexdigest() for k in store.list("")}


def test_status_reports_a_corrupt_state_file_and_no_reader_writes(
    store: Store, feeds_file: Path
) -> None:
    """A damaged `_state/feeds.json` is a problem `status` reports (it used to show "0
    failing ... 1 new" and exit 0), and neither `status` nor `ddl` writes to the store, not
    even the quarantine copy; the next run still keeps the damaged file aside."""
    net = ("--allow-network", "127.0.0.0/8", "--no-progress")
    first = ingest("run", "--feeds", str(feeds_file), "--store", store.uri, *net)
    assert first.returncode == 0, first.stderr
    good = store.get_bytes(FEEDS)
    wrong_type = json.loads(good)
    wrong_type["feeds"]["cli"]["polls"] = "many"
    damaged = {
        "truncated": good[: len(good) // 2],
        "garbage": b"\x00\xff not json at all",
        "wrong type": json.dumps(wrong_type).encode(),
    }
    for what, raw in damaged.items():
        store.put_bytes(FEEDS, raw)
        before = snapshot(store)
        status = ingest("status", "--store", store.uri, "--fail-on-problems")
        assert status.returncode == 3, (what, status.stdout, status.stderr)
        lines = [line for line in status.stdout.splitlines() if "corrupt" in line]
        assert len(lines) == 1 and lines[0].startswith(f"{FEEDS} is corrupt: "), status.stdout
        listed = ingest("status", "--store", store.uri, "--all", "--feeds", str(feeds_file))
        assert listed.returncode == 0 and f"{FEEDS} is corrupt: " in listed.stdout, what
        ddl = ingest("ddl", "--dialect", "duckdb", "--store", store.uri)
        assert ddl.returncode == 0, ddl.stderr
        assert snapshot(store) == before, what  # nothing written, nothing quarantined
    # `index` writes its output and its own state, nothing else
    before = snapshot(store)
    index = ingest("index", "--store", store.uri)
    assert index.returncode == 0, index.stderr
    after = snapshot(store)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and all(k.startswith(("index", "_state/index.json")) for k in changed), changed
    # a run still keeps the damaged file aside and carries on
    again = ingest("run", "--feeds", str(feeds_file), "--store", store.uri, *net)
    assert again.returncode == 0, again.stderr
    assert len(list(store.list("_state/quarantine/"))) == 1
    assert json.loads(store.get_bytes(FEEDS))["feeds"]["cli"]["polls"] == 1
    ok = ingest("status", "--store", store.uri, "--fail-on-problems")
    assert ok.returncode == 0 and "corrupt" not in ok.stdout, ok.stdout


# ------------------------------------------------------------------ faults an operator meets


@pytest.fixture
def slow_feeds_file(tmp_path: Path):
    """A feed of 12 pages that each take 0.5 s: a run that is busy for a few seconds."""
    with FixtureServer().running() as srv:
        items = []
        for i in range(12):
            html = article_html(f"Slow {i}", paragraphs(70 + i)).encode()
            srv.add(f"/s/{i}", slow_page(html, 0.5))
            items.append({"title": f"Slow {i}", "link": srv.url(f"/s/{i}")})
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        path = tmp_path / "slow-feeds.yaml"
        path.write_text(f"feeds:\n  - name: slow\n    url: {srv.url('/f.xml')}\n")
        yield path


def start_ingest(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", *args],
        env=cli_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lease(store: Path, timeout: float = 30) -> None:
    import time

    give_up = time.monotonic() + timeout
    while not list((store / "_state" / "lease").glob("*.json")):
        assert time.monotonic() < give_up, "the first run never took the lease"
        time.sleep(0.05)


def test_overlapping_runs_second_one_exits_or_waits(slow_feeds_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    args = ("run", "--feeds", str(slow_feeds_file), "--store", str(store), "--no-progress")
    net = ("--allow-network", "127.0.0.0/8", "--workers", "1")
    first = start_ingest(*args, *net)
    try:
        wait_for_lease(store)
        second = ingest(*args, *net)
        assert second.returncode == 75, second.stderr
        assert_one_line_error(second, f"store {store} is busy: run ")
        waiting = ingest(*args, *net, "--wait", "60")  # waits for the first, then runs
        assert waiting.returncode == 0, waiting.stderr
        assert "0 written" in waiting.stdout  # the first run did the work, once
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "12 written" in out
    assert _committed_ids(store, "rejects") == []  # nothing done twice


def test_sigterm_mid_run_releases_the_store_and_leaves_no_temp_files(
    slow_feeds_file: Path, tmp_path: Path
) -> None:
    import signal
    import tempfile

    store = tmp_path / "store"
    before = set(Path(tempfile.gettempdir()).glob("newsflow-*"))
    args = ("run", "--feeds", str(slow_feeds_file), "--store", str(store), "--no-progress")
    net = ("--allow-network", "127.0.0.0/8", "--workers", "1")
    first = start_ingest(*args, *net)
    wait_for_lease(store)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143 and "ingest: terminated" in err, err
    assert "Traceback" not in err
    assert list((store / "_tmp").glob("*")) == []
    assert set(Path(tempfile.gettempdir()).glob("newsflow-*")) == before
    again = ingest(*args, *net)  # no waiting for a lease: the terminated run released it
    assert again.returncode == 0 and "12 written" in again.stdout, again.stderr


def test_run_id_dot_dot_writes_only_inside_the_store_layout(
    feeds_file: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    net = ("--allow-network", "127.0.0.0/8", "--no-progress")
    result = ingest(
        "run", "--feeds", str(feeds_file), "--store", str(store), "--run-id", "..", *net
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feeds.yaml", "store"]
    top = {p.name for p in store.iterdir()}
    assert top <= {
        "articles",
        "rejects",
        "raw",
        "_keys",
        "_state",
        "_reports",
        "_tmp",
        "_staging",
    }, top
    assert len(_committed_ids(store)) == 2
    again = ingest("run", "--feeds", str(feeds_file), "--store", str(store), "--run-id", "..", *net)
    assert again.returncode == 0 and "already committed" in again.stdout.lower(), again.stdout
    bad = ingest("run", "--feeds", str(feeds_file), "--store", str(store), "--run-id", "a\x01b")
    assert_one_line_error(bad, "run id must not contain control characters")


def in_private_mount(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a shell script as root of a private user and mount namespace, where it can mount
    a small tmpfs (disk full) or remount it read-only, as an unprivileged user too."""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-ec", script],
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _committed_ids(store: Path, kind: str = "articles") -> list[str]:
    from ingest.lake import read_committed
    from ingest.store import LocalStore

    column = "article_id" if kind == "articles" else "url"
    return read_committed(LocalStore(store), kind)[column].to_pylist()


@pytest.mark.parametrize("fault", ["disk_full", "read_only"])
def test_store_failing_mid_run_is_one_line_and_keeps_what_was_committed(
    fault: str, slow_feeds_file: Path, feeds_file: Path, tmp_path: Path
) -> None:
    mnt, saved = tmp_path / "mnt", tmp_path / "saved"
    mnt.mkdir()
    run = f"{sys.executable} -m ingest.cli run --store {mnt}/store --no-progress "
    run += "--allow-network 127.0.0.0/8 --workers 1"
    size = "300k" if fault == "disk_full" else "64m"
    # A first run commits two articles; the second run of 12 slow pages then meets the fault.
    break_it = (
        f"dd if=/dev/zero of={mnt}/filler bs=1k count=2000 2>/dev/null || true"
        if fault == "disk_full"
        else f"sleep 2; mount -o remount,ro {mnt}"
    )
    script = f"""
        mount -t tmpfs -o size={size} tmpfs {mnt}
        {run} --feeds {feeds_file}
        ( {break_it} ) &
        status=0; {run} --feeds {slow_feeds_file} 2>{mnt}.err || status=$?
        wait
        cp -a {mnt}/store {saved}; cp {mnt}.err {saved}.err
        exit $status
    """
    result = in_private_mount(script, {"INGEST_PART_ROWS": "1"})
    err = (tmp_path / "saved.err").read_text() if (tmp_path / "saved.err").exists() else ""
    assert result.returncode == 1, (result.stdout, result.stderr, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("ingest: error:")]
    expected = "No space left on device" if fault == "disk_full" else "Read-only file system"
    assert len(lines) == 1 and expected in lines[0] and "store" in lines[0], err
    ids = _committed_ids(saved)
    assert len(ids) == len(set(ids)) >= 2  # the first run's articles are intact
    assert list((saved / "_tmp").glob("*.tmp")) == []
