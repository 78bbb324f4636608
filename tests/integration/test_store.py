"""Both stores keep the same contract: atomic writes, atomic create-if-absent, listing; and
S3's errors (missing bucket, bad credentials) are clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.store import Store, StoreError, open_store


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


def test_missing_bucket_and_bad_credentials_are_clear(s3_bucket, monkeypatch) -> None:
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        open_store("s3://no-such-bucket/x").check()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(StoreError, match="denied"):
        open_store(f"s3://{s3_bucket[1]}/x").check()
