"""Both stores keep the same contract: atomic writes, atomic create-if-absent, listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.store import LocalStore, Store, StoreError, open_store

pytestmark = pytest.mark.integration


def test_put_get_list_copy_delete(store: Store, tmp_path: Path) -> None:
    store.check()
    store.put_bytes("a/x=1/one.bin", b"1")
    store.put_bytes("a/x=1/two.bin", b"2")
    store.put_bytes("b/three.bin", b"3")
    assert list(store.list("a/")) == ["a/x=1/one.bin", "a/x=1/two.bin"]
    assert store.get_bytes("a/x=1/two.bin") == b"2"
    assert store.get_bytes("missing") is None
    local = tmp_path / "f.bin"
    local.write_bytes(b"file-body")
    store.put_file("c/f.bin", local)
    store.copy("c/f.bin", "c/g.bin")
    assert store.get_bytes("c/g.bin") == b"file-body"
    store.delete("c/f.bin")
    store.delete("c/never-existed")
    assert not store.exists("c/f.bin") and store.exists("c/g.bin")


def test_if_absent_is_an_atomic_create(store: Store) -> None:
    assert store.put_bytes("_manifests/1.json", b"first", if_absent=True) is True
    assert store.put_bytes("_manifests/1.json", b"second", if_absent=True) is False
    assert store.get_bytes("_manifests/1.json") == b"first"


def test_local_temp_files_are_outside_every_data_prefix(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    local.put_bytes("articles/p.parquet", b"x")
    assert not list(tmp_path.glob("articles/**/*.tmp"))
    assert list(local.list("")) == ["articles/p.parquet"]
    with pytest.raises(ValueError):
        local.put_bytes("../escape", b"x")


def test_missing_bucket_and_bad_credentials_are_clear(s3_bucket, monkeypatch) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/x").check()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(StoreError, match="denied"):
        open_store(f"s3://{s3_bucket[1]}/x").check()


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
