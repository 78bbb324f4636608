"""The commit protocol's refusal of the earlier store layout: no server, a local directory."""

from __future__ import annotations

import pytest

from ingest.lake import Lake
from ingest.lake.tables import is_legacy
from ingest.store import StoreError


def test_a_store_of_the_earlier_layout_is_refused_until_migrated(tmp_path) -> None:
    from ingest.store import LocalStore

    store = LocalStore(tmp_path / "old")
    store.put_bytes("_manifests/0000000001.json", b"{}")
    assert is_legacy(store)
    with pytest.raises(StoreError, match="ingest migrate --store"):
        Lake(store).recover()
