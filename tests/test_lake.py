"""The commit log: exactly once, idempotent per run, roll-forward after a crash."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from ingest import ids, lake, schema
from ingest.lake import CommitRequest, Lake, PartWriter, read_committed
from ingest.store import Store

pytestmark = pytest.mark.integration


def row(n: int, run_id: str) -> dict:
    url = f"https://news.example/a/{n}"
    return {
        "article_id": ids.article_id(url), "url": url, "final_url": url, "canonical_url": url,
        "source": "s", "feed_url": "https://news.example/feed", "title": f"t{n}",
        "authors": [], "published_at": datetime(2025, 12, 18, n % 24, tzinfo=UTC),
        "published_at_source": "feed", "updated_at": None,
        "fetched_at": datetime(2025, 12, 18, tzinfo=UTC), "language": "en",
        "site_name": None, "summary": None, "text": f"body {n}", "word_count": 2,
        "categories": [], "tags": [], "image_url": None, "content_sha256": "0" * 64,
        "simhash": -n, "http_status": 200, "run_id": run_id, "schema_version": 1,
    }  # fmt: skip


def stage(
    store: Store, run_id: str, numbers: list[int], part_rows: int = 2, attempt: str = "a"
) -> CommitRequest:
    key = ids.run_key(run_id)
    writer = PartWriter(
        store, schema.article(), "articles", key, "2025-12-18", part_rows, attempt=attempt
    )
    for n in numbers:
        writer.add(row(n, run_id))
    return CommitRequest(
        run_id=run_id, run_key=key, parts=writer.close(),
        article_ids=[row(n, run_id)["article_id"] for n in numbers], url_keys=[],
        feed_states={"s": {"name": "s", "url": "u", "etag": f'"{run_id}"'}},
        report={"run_id": run_id},
    )  # fmt: skip


def committed_ids(store: Store) -> list[str]:
    return read_committed(store)["article_id"].to_pylist()


def test_staged_parts_are_invisible_until_commit(store: Store) -> None:
    request = stage(store, "r1", [1, 2, 3])
    assert not list(store.list("articles/"))
    result = Lake(store).commit(request)
    assert result.articles_committed == 3 and result.dates == ["2025-12-18"]
    assert sorted(committed_ids(store)) == sorted(request.article_ids)
    assert not list(store.list("_staging/"))
    assert json.loads(store.get_bytes("_state/feeds/s.json"))["etag"] == '"r1"'


def test_parts_sorted_by_published_time_with_schema_metadata(store: Store) -> None:
    Lake(store).commit(stage(store, "r1", [5, 1, 3, 2], part_rows=10))
    (key,) = [k for k in store.list("articles/") if k.endswith(".parquet")]
    meta = pq.ParquetFile(io.BytesIO(store.get_bytes(key)))
    table = meta.read()
    assert table.schema.equals(schema.article().arrow, check_metadata=False)
    times = table["published_at"].to_pylist()
    assert times == sorted(times)
    assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
    assert meta.metadata.row_group(0).column(0).statistics is not None


def test_same_run_committed_twice_changes_nothing(store: Store) -> None:
    Lake(store).commit(stage(store, "r1", [1, 2]))
    before = sorted(store.list(""))
    again = Lake(store).commit(stage(store, "r1", [1, 2, 9]))
    assert again.already_committed and again.articles_committed == 2
    after = [k for k in sorted(store.list("")) if not k.startswith("_staging/")]
    assert after == before
    assert len(committed_ids(store)) == 2


def test_rows_already_committed_are_filtered_at_commit(store: Store) -> None:
    Lake(store).commit(stage(store, "r1", [1, 2]))
    result = Lake(store).commit(stage(store, "r2", [2, 3, 4]))
    assert result.articles_committed == 2 and result.duplicates_dropped == 1
    values = committed_ids(store)
    assert len(values) == len(set(values)) == 4


def test_concurrent_committer_on_same_sequence_retries(store: Store) -> None:
    first, second = Lake(store), Lake(store)
    r1 = stage(store, "r1", [1, 2])
    r2 = stage(store, "r2", [2, 3])
    stale = second.committed_ids()  # r2's committer read the log before r1 committed
    first.commit(r1)
    original = second.committed_ids
    calls = []

    def stale_first(since=None):
        calls.append(since)
        return stale if len(calls) == 1 else original(since)

    second.committed_ids = stale_first  # type: ignore[method-assign]
    result = second.commit(r2)
    assert result.seq == 2 and result.duplicates_dropped == 1
    values = committed_ids(store)
    assert len(values) == len(set(values)) == 3


def test_crash_after_manifest_is_rolled_forward(store: Store, monkeypatch) -> None:
    request = stage(store, "r1", [1, 2, 3, 4, 5])
    real_copy = store.copy
    copied = []

    def crash_after_one(src: str, dst: str) -> None:
        if copied:
            raise KeyboardInterrupt("killed")
        copied.append(dst)
        real_copy(src, dst)

    monkeypatch.setattr(store, "copy", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        Lake(store).commit(request)
    monkeypatch.setattr(store, "copy", real_copy)
    assert len(committed_ids(store)) == 2  # one part of three is visible, nothing twice
    assert not store.exists("_manifests/0000000001.done")
    assert Lake(store).recover() == [1]
    assert sorted(committed_ids(store)) == sorted(request.article_ids)
    assert Lake(store).recover() == []


def test_checkpoint_replaces_reading_every_manifest(store: Store, monkeypatch) -> None:
    monkeypatch.setattr(lake, "CHECKPOINT_EVERY", 2)
    for i in range(5):
        Lake(store).commit(stage(store, f"r{i}", [i]))
    assert any("checkpoint-0000000004" in k for k in store.list("_state/ids/"))
    read = []
    lk = Lake(store)
    real = lk.read_manifest
    monkeypatch.setattr(lk, "read_manifest", lambda seq: read.append(seq) or real(seq))
    loaded = lk.committed_ids()
    assert read == [5]
    assert loaded.seq == 5 and len(loaded.article_ids) == 5


def test_two_attempts_of_one_run_commit_once(store: Store) -> None:
    zombie = stage(store, "r1", [1, 2, 3], attempt="zombie")
    retry = stage(store, "r1", [1, 2, 3, 4], attempt="retry")
    assert {p.staged for p in zombie.parts}.isdisjoint(p.staged for p in retry.parts)
    first = Lake(store).commit(retry)
    second = Lake(store).commit(zombie)
    assert (first.already_committed, second.already_committed) == (False, True)
    assert len(committed_ids(store)) == 4
    assert not list(store.list("_staging/"))  # the losing attempt's staging is dropped too
