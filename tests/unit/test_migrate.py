"""`ingest.lake.migrate` in process, on a local copy of the earlier engine's store."""

from __future__ import annotations

import pytest

from ingest.lake import read_committed
from ingest.lake.migrate import migrate
from ingest.lake.tables import is_legacy
from ingest.store import LocalStore
from tests.helpers.migrate import unpack


def test_an_interrupted_migration_is_finished_by_the_next(tmp_path, monkeypatch) -> None:
    store = LocalStore(unpack(tmp_path))
    from ingest.lake import migrate as module

    def killed(*args: object) -> None:
        raise KeyboardInterrupt("killed during the clean-up")

    monkeypatch.setattr(module, "_remove_legacy", killed)
    with pytest.raises(KeyboardInterrupt):
        migrate(store)
    monkeypatch.undo()
    assert is_legacy(store) and read_committed(store).num_rows == 11
    migrate(store)
    assert not is_legacy(store)
    assert read_committed(store).num_rows == 11
    assert read_committed(store, "rejects").num_rows == 1
