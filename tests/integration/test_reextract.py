"""The raw archive and re-extraction: the demo site is ingested with its pages kept as WARC,
an extraction rule changes, and `reextract` updates exactly the affected rows from the
archive with the network blocked; their index days, and only those, change."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ingest import extract
from ingest.config import Settings, load_feeds
from ingest.index import build, index_prefix
from ingest.lake import read_committed
from ingest.normalize import index_date
from ingest.reextract import reextract
from ingest.run import run
from ingest.store import LocalStore, Store
from ingest.text import count_words
from ingest.warc import read_record
from newsflow_dev.demo_site import serve_site, write_feeds_file

CHANGED_SOURCE = "meridian-economy"


def ingest_demo(store: Store, tmp_path: Path) -> None:
    settings = Settings.from_env({}, allow_networks=["127.0.0.0/8"], workers=2, progress=False,
                                 per_host_concurrency=8, poll_min_interval=0.0)  # fmt: skip
    with serve_site() as base:
        feeds = load_feeds(write_feeds_file(base, tmp_path / "feeds.yaml"))
        report = run(store, feeds, settings)
    assert report.articles_written == 18 and report.raw_bytes > 0


def index_bytes(store: Store, days: list) -> dict[str, bytes]:
    out = {}
    for day in days:
        for key in store.list(index_prefix(day)):
            out[key] = store.get_bytes(key)
    return out


def test_every_article_points_at_its_raw_record(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    ingest_demo(store, tmp_path)
    rows = read_committed(store).to_pylist()
    files = {r["warc_file"] for r in rows}
    assert all(f.startswith("raw/ingest_date=") and f.endswith(".warc.gz") for f in files)
    for row in rows:
        record, record_id = read_record(
            store.get_range(row["warc_file"], row["warc_offset"], row["warc_length"])
        )
        assert record_id == row["warc_record_id"] and record.final_url == row["final_url"]
        assert record.status == 200 and b"<html" in record.body.lower()
        assert record.ip_address == "127.0.0.1"
    assert row["extractor"] == extract.extractor_version()
    assert not list(store.list("_staging/"))  # published: nothing left in staging
    warcio = str(Path(sys.executable).with_name("warcio"))
    for name in files:
        check = subprocess.run([warcio, "check", str(store.root / name)], capture_output=True,
                               text=True)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


def drop_first_paragraph(html: str, url: str) -> dict:
    """A changed extraction rule: articles of one section lose their first paragraph and
    a marked headline, which the day index shows."""
    got = ORIGINAL_EXTRACT(html, url)
    if f"/{CHANGED_SOURCE.split('-')[1]}/" in url:
        lines = got["text"].split("\n")
        got["text"] = "\n".join(lines[2:] if len(lines) > 2 else lines)
        got["content_sha256"], got["simhash"] = extract.fingerprints(got["text"])
        got["word_count"] = count_words(got["text"])
        got["title"] = f"{got['title']} (re-extracted)"
    got["extractor"] = extract.extractor_version()
    return got


ORIGINAL_EXTRACT = extract.extract_page


def test_reextract_updates_changed_rows_in_place_without_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "lake")
    ingest_demo(store, tmp_path)
    before = {r["article_id"]: r for r in read_committed(store).to_pylist()}
    all_days = sorted({index_date(r) for r in before.values()})
    build(store, all_days)
    index_before = index_bytes(store, all_days)

    # the new rule, in this process and in the forked extraction workers; no network at all
    monkeypatch.setattr(extract, "RULES_VERSION", extract.RULES_VERSION + 1)
    monkeypatch.setattr(extract, "extract_page", drop_first_paragraph)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    result = reextract(store, older_than=extract.RULES_VERSION, workers=2, start_method="fork")

    after = {r["article_id"]: r for r in read_committed(store).to_pylist()}
    assert after.keys() == before.keys()  # one row per article, none added or lost
    affected = {a for a, r in before.items() if r["source"] == CHANGED_SOURCE}
    assert affected and result.selected == result.reextracted == len(before)
    assert result.changed == len(before)  # every row records the new extractor
    for aid, row in after.items():
        old = before[aid]
        assert row["extractor"] == extract.extractor_version()
        assert row["warc_record_id"] == old["warc_record_id"]
        assert row["revision"] == old["revision"] and row["run_id"] == old["run_id"]
        if aid in affected:
            assert row["text"] != old["text"] and row["word_count"] < old["word_count"]
        else:
            assert row["text"] == old["text"]
    changed_days = {index_date(before[a]).isoformat() for a in affected}
    assert result.index_dates == changed_days
    # rebuild what reextract named: exactly the days whose stories changed differ
    build(store, sorted(date.fromisoformat(d) for d in result.index_dates))
    index_after = index_bytes(store, all_days)
    differing = {k.split("/")[1].removeprefix("date=") for k in index_before
                 if index_before[k] != index_after[k]}  # fmt: skip
    assert differing == changed_days

    again = reextract(store, older_than=extract.RULES_VERSION, workers=2, start_method="fork")
    assert again.selected == 0 and again.changed == 0  # resumable: done rows not selected


def test_reextract_resumes_after_dying_midway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest import reextract as module

    store = LocalStore(tmp_path / "lake")
    ingest_demo(store, tmp_path)
    monkeypatch.setattr(extract, "RULES_VERSION", extract.RULES_VERSION + 1)
    real_merge = module._merge
    calls = []

    def dies_after_one(*args: object) -> None:
        if calls:
            raise KeyboardInterrupt  # the process is stopped between two batches
        calls.append(1)
        real_merge(*args)

    monkeypatch.setattr(module, "_merge", dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        reextract(store, older_than=extract.RULES_VERSION, batch_rows=3, workers=2,
                  start_method="fork")  # fmt: skip
    done = [r for r in read_committed(store).to_pylist()
            if r["extractor"] == extract.extractor_version()]  # fmt: skip
    assert 0 < len(done) < 18  # one batch committed whole, the rest untouched
    monkeypatch.setattr(module, "_merge", real_merge)
    rest = reextract(store, older_than=extract.RULES_VERSION, batch_rows=3, workers=2,
                     start_method="fork")  # fmt: skip
    assert rest.selected == 18 - len(done)  # only what was not done yet
    rows = read_committed(store).to_pylist()
    assert len(rows) == 18 and len({r["article_id"] for r in rows}) == 18
    assert all(r["extractor"] == extract.extractor_version() for r in rows)


def damage_one_record(store: Store, damage: str) -> tuple[dict, list[dict]]:
    """Damage the raw record of the last article of one WARC file; the damaged row and the
    rows it takes down with it (all of its file when the whole object is gone)."""
    rows = read_committed(store).to_pylist()
    key = sorted({r["warc_file"] for r in rows})[0]
    in_file = sorted((r for r in rows if r["warc_file"] == key), key=lambda r: r["warc_offset"])
    victim = in_file[-1]  # nothing of another article lies after its record
    data = bytearray(store.get_bytes(key) or b"")
    start, length = victim["warc_offset"], victim["warc_length"]
    if damage == "truncated":  # the file ends in the middle of the record
        store.put_bytes(key, bytes(data[: start + length // 2]))
    elif damage == "garbage":  # same size, but bytes in the middle of the range overwritten
        middle = start + length // 2
        data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
        store.put_bytes(key, bytes(data))
    else:  # "missing": the object is gone
        store.delete(key)
        return victim, in_file
    return victim, [victim]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_a_damaged_raw_record_is_counted_and_the_rest_reextracted(
    store: Store,
    tmp_path: Path,
    damage: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One unreadable record must not stop re-extraction of the others: it is counted
    (`raw_unreadable`, its raw key and article id logged) and its row stays as it was. A
    raw object that is gone is what `maintain --raw-days` leaves: without a raw record."""
    ingest_demo(store, tmp_path)
    victim, lost = damage_one_record(store, damage)
    before = {r["article_id"]: r for r in read_committed(store).to_pylist()}
    monkeypatch.setattr(extract, "RULES_VERSION", extract.RULES_VERSION + 1)
    monkeypatch.setattr(extract, "extract_page", drop_first_paragraph)

    with caplog.at_level("WARNING", logger="ingest.reextract"):
        result = reextract(store, workers=2, start_method="fork")

    lost_ids = {r["article_id"] for r in lost}
    if damage == "missing":
        assert (result.missing_raw, result.raw_unreadable) == (len(lost), 0)
    else:
        assert (result.missing_raw, result.raw_unreadable) == (0, 1)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert any(victim["warc_file"] in w and victim["article_id"] in w for w in warnings)
        assert "1 with an unreadable raw record" in result.summary()
    assert result.selected == len(before) == 18
    assert result.reextracted == len(before) - len(lost) == result.changed
    after = {r["article_id"]: r for r in read_committed(store).to_pylist()}
    assert after.keys() == before.keys()
    for aid, row in after.items():
        if aid in lost_ids:
            assert row == before[aid]  # left as it was
        else:
            assert row["extractor"] == extract.extractor_version()


def test_cli_reextract_with_a_truncated_raw_file_exits_zero(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    ingest_demo(store, tmp_path)
    victim, _ = damage_one_record(store, "truncated")
    src = str(Path(__file__).parents[2] / "src")  # this checkout's engine in the subprocess
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "reextract", "--store", str(store.root),
         "--no-index"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (summary,) = [line for line in done.stdout.splitlines() if line.startswith("re-extracted")]
    assert summary.startswith("re-extracted 17 of 18 selected articles")
    assert "1 with an unreadable raw record" in summary
    warning = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and victim["warc_file"] in warning[0]
    assert victim["article_id"] in warning[0] and "error:" not in done.stderr
