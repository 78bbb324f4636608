"""The commit protocol on Delta tables: exactly once, idempotent per run, roll-forward."""

from __future__ import annotations

import io
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from ingest import ids, schema
from ingest.lake import CommitRequest, KeyIndex, Lake, read_committed
from ingest.lake.keys import WATERMARK, Marker, marker_key
from ingest.lake.tables import commit_entry
from ingest.state import load_feed_states
from ingest.store import Store
from tests.helpers.lake import row, stage


def committed_ids(store: Store) -> list[str]:
    return read_committed(store)["article_id"].to_pylist()


def delta(store: Store) -> DeltaTable:
    return DeltaTable(store.table_uri("articles"), storage_options=store.storage_options())


def test_staged_rows_are_invisible_until_commit(store: Store) -> None:
    request = stage(store, "r1", [1, 2, 3])
    assert read_committed(store).num_rows == 0
    result = Lake(store).commit(request)
    assert result.articles_committed == 3 and result.dates == ["2025-12-18"]
    assert sorted(committed_ids(store)) == sorted(request.article_ids)
    assert not list(store.list("_staging/"))
    assert load_feed_states(store)["s"].etag == '"r1"'
    # the commit names its run; its version is the run's app transaction
    table = delta(store)
    assert table.transaction_version("r1") == result.version == table.version()
    assert table.history(1)[0]["newsflow.run_id"] == "r1"
    # dated, so the table's transaction retention (90 days) can expire it
    (txn,) = [a["txn"] for a in commit_entry(store, "articles", result.version) if "txn" in a]
    assert txn["appId"] == "r1" and txn["lastUpdated"] > 0


def test_data_files_zstd_with_statistics_and_the_schema_files_columns(store: Store) -> None:
    Lake(store).commit(stage(store, "r1", [5, 1, 3, 2], part_rows=10))
    (path,) = pa.table(delta(store).get_add_actions())["path"].to_pylist()
    meta = pq.ParquetFile(io.BytesIO(store.get_bytes(f"articles/{path}")))
    assert meta.schema_arrow.names == schema.article().names  # partition column in the path
    assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
    assert meta.metadata.row_group(0).column(0).statistics is not None
    read = read_committed(store)
    assert read.schema.field("ingest_date").type == pa.date32()
    assert read.schema.field("published_at").type == pa.timestamp("us", tz="UTC")


def test_same_run_committed_twice_changes_nothing(store: Store) -> None:
    first = Lake(store).commit(stage(store, "r1", [1, 2]))
    version = delta(store).version()
    again = Lake(store).commit(stage(store, "r1", [1, 2, 9]))
    assert again.already_committed and again.articles_committed == 2
    assert again.version == first.version and delta(store).version() == version
    assert len(committed_ids(store)) == 2


def test_rows_already_committed_are_filtered_at_commit(store: Store) -> None:
    Lake(store).commit(stage(store, "r1", [1, 2]))
    result = Lake(store).commit(stage(store, "r2", [2, 3, 4, 4]))
    assert result.articles_committed == 2 and result.duplicates_dropped == 2
    values = committed_ids(store)
    assert len(values) == len(set(values)) == 4


def test_every_key_of_a_committed_article_is_marked(store: Store) -> None:
    Lake(store).commit(stage(store, "r1", [7]))
    keys = KeyIndex(store)
    r = row(7, "r1")
    asked = [r["article_id"], ids.url_key(r["url"]), ids.url_key(r["final_url"]), "f" * 32]
    assert keys.committed(asked) == set(asked[:3])
    marker = keys.read(ids.url_key(r["url"]))
    assert marker is not None and marker.article_id == r["article_id"]
    assert marker.content_sha256 == r["content_sha256"] and marker.ingest_date is not None
    assert store.get_bytes(marker_key(ids.url_key(r["url"]))) == marker.encode()
    # markers written before dates and hashes were kept still name their article
    assert Marker.decode(r["article_id"].encode()) == Marker(r["article_id"])


def test_concurrent_commits_of_overlapping_runs_keep_every_article_once(store: Store) -> None:
    requests = [stage(store, f"c{i}", list(range(i * 3, i * 3 + 6))) for i in range(4)]
    barrier = threading.Barrier(len(requests))
    errors: list[BaseException] = []

    def commit(request: CommitRequest) -> None:
        barrier.wait()
        try:
            Lake(store).commit(request)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=commit, args=(r,)) for r in requests]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    values = committed_ids(store)
    assert len(values) == len(set(values)) == 15  # 0..14, overlapping runs
    assert delta(store).version() == 4


def test_two_attempts_of_one_run_commit_once(store: Store) -> None:
    zombie = stage(store, "r1", [1, 2, 3], attempt="zombie")
    retry = stage(store, "r1", [1, 2, 3, 4], attempt="retry")
    assert {p.staged for p in zombie.parts}.isdisjoint(p.staged for p in retry.parts)
    first = Lake(store).commit(retry)
    second = Lake(store).commit(zombie)
    assert (first.already_committed, second.already_committed) == (False, True)
    assert len(committed_ids(store)) == 4
    assert not list(store.list("_staging/"))  # the losing attempt's staging is dropped too


def test_a_kill_after_the_commit_point_is_finished_by_a_retry(store: Store, monkeypatch):
    request = stage(store, "r1", [1, 2, 3])

    def killed(*args: object) -> None:
        raise KeyboardInterrupt("killed right after the articles commit")

    monkeypatch.setattr(KeyIndex, "mark", killed)
    with pytest.raises(KeyboardInterrupt):
        Lake(store).commit(request)
    monkeypatch.undo()
    # committed (the table says so) but not published: no markers, no feed state, staging
    assert len(committed_ids(store)) == 3
    assert not KeyIndex(store).committed(request.article_ids)
    assert load_feed_states(store) == {}
    # a retry of the commit (Airflow retries the task) answers from the commit itself
    retried = Lake(store).commit(stage(store, "r1", [1, 2, 3], attempt="retry"))
    assert retried.already_committed and retried.articles_committed == 3
    assert Lake(store).recover() == []  # the retry finished the publication
    assert KeyIndex(store).committed(request.article_ids) == set(request.article_ids)
    assert load_feed_states(store)["s"].etag == '"r1"'
    assert not list(store.list("_staging/"))
    # and a later run with the same articles adds nothing
    assert Lake(store).commit(stage(store, "r2", [1, 2, 3])).articles_committed == 0


def commit_three_then_lose_the_markers(store: Store) -> None:
    for i in range(3):
        Lake(store).commit(stage(store, f"r{i}", [i]))
    for key in list(store.list("_keys/")):
        store.delete(key)
    store.delete(WATERMARK)


def test_markers_are_rebuilt_from_the_log_when_the_watermark_is_behind(store: Store) -> None:
    commit_three_then_lose_the_markers(store)
    assert not KeyIndex(store).committed([row(0, "x")["article_id"]])
    Lake(store).recover()
    wanted = [row(i, "x")["article_id"] for i in range(3)]
    assert KeyIndex(store).committed(wanted) == set(wanted)


def test_a_marker_left_empty_by_a_crash_before_the_sync_is_rewritten(store: Store) -> None:
    """A local store's new markers are durable only after one sync: a crash before it can
    leave one empty, and the watermark then has not moved, so recovery rewrites it."""
    for i in range(2):
        Lake(store).commit(stage(store, f"r{i}", [i]))
    keys = KeyIndex(store)
    aid = row(1, "x")["article_id"]
    good = keys.read(aid)
    assert good is not None and good.article_id == aid
    store.put_bytes(marker_key(aid), b"")  # what the crash left
    store.delete(WATERMARK)
    assert keys.read(aid) is None
    Lake(store).recover()
    assert keys.read(aid) == good
    assert keys.committed([aid, row(0, "x")["article_id"]]) == {aid, row(0, "x")["article_id"]}


def test_the_report_of_a_committed_run_is_read_from_its_commit(store: Store) -> None:
    from ingest.lake.commit import REPORTS
    from ingest.run import previous_report

    Lake(store).commit(stage(store, "r1", [1, 2]))
    for key in list(store.list(REPORTS)):  # the convenience copy is not needed
        store.delete(key)
    report = previous_report(store, "r1")
    assert report.articles_written == 2 and report.already_committed


def test_markers_can_be_rebuilt_from_the_table_when_the_log_is_gone(store: Store) -> None:
    from ingest.lake.maintain import maintain

    commit_three_then_lose_the_markers(store)
    delta(store).create_checkpoint()  # as maintenance does; older log entries then expire
    store.delete("articles/_delta_log/00000000000000000001.json")
    with pytest.raises(RuntimeError, match="--rebuild-keys"):
        Lake(store).recover()
    maintain(store, rebuild_keys=True)
    wanted = [row(i, "x")["article_id"] for i in range(3)]
    assert KeyIndex(store).committed(wanted) == set(wanted)
