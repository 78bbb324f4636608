"""The local store's own guarantees (temp files, empty directories, concurrent deletes) and
the errors a bad store URI or an unreachable endpoint give, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.store import LocalStore, StoreError, open_store


def test_local_temp_files_are_outside_every_data_prefix(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    local.put_bytes("articles/p.parquet", b"x")
    assert not list(tmp_path.glob("articles/**/*.tmp"))
    assert list(local.list("")) == ["articles/p.parquet"]
    with pytest.raises(ValueError):
        local.put_bytes("../escape", b"x")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "", ".", "a/.."])
def test_local_keys_outside_the_root_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "lake")
    for call in (lambda: store.put_bytes(key, b"x"), lambda: store.get_bytes(key),
                 lambda: store.exists(key), lambda: store.delete(key)):  # fmt: skip
        with pytest.raises(ValueError, match="escapes the store root"):
            call()
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob("*.tmp"))


def test_local_keys_are_normalized_inside_the_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/./b/../c.json", b"{}")
    assert store.get_bytes("a/c.json") == b"{}" and list(store.list("")) == ["a/c.json"]


def test_local_writes_go_on_when_the_temp_directory_was_removed(tmp_path: Path) -> None:
    """The temp directory is made once per process; a write that finds it gone makes it
    again instead of failing (an operator cleaning up beside a long run)."""
    store = LocalStore(tmp_path)
    store.put_bytes("one.json", b"1")
    (tmp_path / "_tmp").rmdir()
    assert store.put_bytes("two.json", b"2") and store.get_bytes("two.json") == b"2"
    store.put_file("three.json", tmp_path / "one.json")
    assert store.get_bytes("three.json") == b"1"
    assert not list((tmp_path / "_tmp").iterdir())


def test_local_delete_leaves_no_empty_directories(tmp_path: Path) -> None:
    """Every run stages under `_staging/<run>/` and cleans it: a directory left per run
    would make every later listing of `_staging/` walk the whole history."""
    store = LocalStore(tmp_path)
    for run in range(3):
        store.put_bytes(f"_staging/run{run}/0/part-0.parquet", b"x")
        store.put_bytes(f"_staging/run{run}/commit.json", b"{}")
    store.put_bytes("keep/me.json", b"{}")
    for key in list(store.list("_staging/run1/")):
        store.delete(key)
    assert sorted(p.name for p in (tmp_path / "_staging").iterdir()) == ["run0", "run2"]
    for key in list(store.list("_staging/")):
        store.delete(key)
    assert not (tmp_path / "_staging").exists()
    assert store.get_bytes("keep/me.json") == b"{}" and tmp_path.is_dir()


def test_local_writes_survive_a_concurrent_delete_emptying_their_directory(
    tmp_path: Path,
) -> None:
    import threading

    store = LocalStore(tmp_path)
    errors: list[BaseException] = []

    def churn(name: str) -> None:
        try:
            for i in range(300):
                store.put_bytes(f"shared/dir/{name}-{i}", b"x", if_absent=i % 2 == 0)
                store.delete(f"shared/dir/{name}-{i}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not (tmp_path / "shared").exists()


def test_unreachable_endpoint_is_clear(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(StoreError, match=r"unreachable at http://127\.0\.0\.1:1"):
        open_store("s3://bucket/x").check()


@pytest.mark.parametrize("uri", ["s3://", "gs://bucket/x", ""])
def test_bad_store_uri(uri: str) -> None:
    with pytest.raises(StoreError):
        open_store(uri)


def test_local_writes_without_a_directory_fsync_are_atomic_and_sync_makes_them_durable(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    assert store.put_bytes("_keys/abc/abcdef", b"one", if_absent=True, durable=False)
    assert not store.put_bytes("_keys/abc/abcdef", b"two", if_absent=True, durable=False)
    assert store.put_bytes("_keys/abd/abdxyz", b"three", durable=False)
    store.sync()
    assert store.get_bytes("_keys/abc/abcdef") == b"one"
    assert store.get_bytes("_keys/abd/abdxyz") == b"three"
    assert list((tmp_path / "_tmp").iterdir()) == []  # nothing half-written left behind


def test_a_new_local_write_left_to_the_sync_skips_its_own_fsync(monkeypatch, tmp_path) -> None:
    """Markers by the thousand: one sync for all of them, not an fsync each. A write that
    replaces a name still syncs its content first (a crash never empties what was there)."""
    import ingest.store as store_module

    synced: list[int] = []
    real_fsync = store_module.os.fsync
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    store = LocalStore(tmp_path)
    assert store.put_bytes("_keys/abc/abcdef", b"one", if_absent=True, durable=False)
    assert synced == []
    assert store.put_bytes("_keys/abc/abcdef", b"two", durable=False)  # a replace
    assert len(synced) == 1
    assert store.put_bytes("_state/keys.json", b"{}", if_absent=True)  # durable: content, dir
    assert len(synced) == 3
    assert store.get_bytes("_keys/abc/abcdef") == b"two"


def test_local_sync_without_syncfs_syncs_everything(monkeypatch, tmp_path: Path) -> None:
    import ingest.store as store_module

    synced = []
    monkeypatch.setattr(store_module, "_libc", lambda: object())  # a C library without it
    monkeypatch.setattr(store_module.os, "sync", lambda: synced.append(True))
    LocalStore(tmp_path).sync()
    assert synced == [True]


def test_key_markers_are_synced_before_mark_returns(tmp_path: Path) -> None:
    """The watermark says markers exist: they must be durable before it can be written."""
    from ingest.lake.keys import KeyIndex, Marker

    calls: list[str] = []

    class Recording(LocalStore):
        def put_bytes(self, key: str, data: bytes, **kwargs: bool) -> bool:
            calls.append(f"put {key} durable={kwargs.get('durable', True)}")
            return super().put_bytes(key, data, **kwargs)

        def sync(self) -> None:
            calls.append("sync")
            super().sync()

    keys = KeyIndex(Recording(tmp_path))
    keys.mark({"a" * 32: Marker("a" * 32, "2026-12-04", "f" * 64), "b" * 32: Marker("b" * 32)})
    keys.advance(7)
    assert sorted(calls[:2]) == [
        f"put _keys/aaa/{'a' * 32} durable=False",
        f"put _keys/bbb/{'b' * 32} durable=False",
    ]
    assert calls[2:] == ["sync", "put _state/keys.json durable=True"]
    assert keys.read("a" * 32) == Marker("a" * 32, "2026-12-04", "f" * 64)
