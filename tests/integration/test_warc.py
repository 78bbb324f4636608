"""The raw WARC archive in a store: one record by ranged read, on a local and an S3 store."""

from __future__ import annotations

import pytest

from ingest.store import Store
from ingest.warc import read_record
from tests.helpers.warc import _expected, _records, _write


def test_one_record_by_ranged_read_from_the_store(store: Store) -> None:
    records = _records()
    data, locations = _write(records)
    store.put_bytes("warc/2024/05/06/pages-0001.warc.gz", data)
    for rec, loc in zip(records, locations, strict=True):
        member = store.get_range("warc/2024/05/06/pages-0001.warc.gz", loc.offset, loc.length)
        assert member == data[loc.offset : loc.offset + loc.length]
        got, record_id = read_record(member)
        assert (got, record_id) == (_expected(rec), loc.record_id)

    key = "warc/2024/05/06/pages-0001.warc.gz"
    assert store.get_range("warc/missing.warc.gz", 0, 10) is None
    assert store.get_range(key, len(data) - 5, 100) == data[-5:]  # runs past the end
    assert store.get_range(key, len(data), 10) == b""  # starts at the end
    assert store.get_range(key, 0, 0) == b""
    assert store.get_range("warc/missing.warc.gz", 0, 0) is None
    with pytest.raises(ValueError):
        store.get_range(key, -1, 10)
