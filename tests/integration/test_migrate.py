"""`ingest migrate` on a store written by the earlier engine (the manifest layout)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import ids
from ingest.lake import KeyIndex, Lake, read_committed
from ingest.lake.migrate import migrate
from ingest.lake.tables import is_legacy
from ingest.state import load_feed_states
from ingest.store import LocalStore, Store, StoreError
from tests.helpers.migrate import unpack

SRC = str(Path(__file__).parents[2] / "src")


def copy_to(store: Store, root: Path) -> None:
    """The fixture's files, key for key, into any store (local or S3)."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        store.put_bytes(path.relative_to(root).as_posix(), path.read_bytes())


def test_a_store_of_the_earlier_engine_is_converted_without_loss(store: Store, tmp_path) -> None:
    copy_to(store, unpack(tmp_path))
    assert is_legacy(store)
    result = migrate(store)
    # 11 articles: two runs published, the third killed before publication rolled forward
    assert (result.articles, result.rejects, result.feeds) == (11, 1, 3)
    articles = read_committed(store)
    found = articles["article_id"].to_pylist()
    assert len(found) == len(set(found)) == 11
    assert sorted({r["run_id"] for r in articles.to_pylist()}) == [
        "legacy-1",
        "legacy-2",
        "legacy-3",
    ]
    assert read_committed(store, "rejects")["reason"].to_pylist() == ["http_404"]
    # every committed key is known, so nothing of it is fetched or committed again
    keys = KeyIndex(store)
    links = [ids.url_key(u) for u in articles["url"].to_pylist()]
    assert keys.committed(found + links) == set(found + links)
    assert set(load_feed_states(store)) == {"one", "two", "three"}
    # the old layout is gone; a second migration is a no-op
    assert not is_legacy(store)
    for prefix in ("_manifests/", "_state/runs/", "_state/feeds/", "_staging/"):
        assert not list(store.list(prefix)), prefix
    assert migrate(store).already_done
    assert read_committed(store).num_rows == 11


def test_runs_refuse_an_unmigrated_store_and_the_cli_migrates_it(tmp_path) -> None:
    root = unpack(tmp_path)
    with pytest.raises(StoreError, match="ingest migrate"):
        Lake(LocalStore(root)).recover()
    done = subprocess.run(
        [sys.executable, "-m", "ingest.cli", "migrate", "--store", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "migrated 11 articles, 1 rejects and 3 feed states" in done.stdout
    Lake(LocalStore(root)).recover()


def test_migrate_refuses_a_store_that_does_not_exist_and_creates_nothing(tmp_path) -> None:
    """A typo in the path must not leave `<typo>/_tmp/` behind (store.check created it)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for where, text in ((tmp_path / "typo", "no newsflow store at"), (empty, "no newsflow")):
        done = subprocess.run(
            [sys.executable, "-m", "ingest.cli", "migrate", "--store", str(where)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert not (tmp_path / "typo").exists() and list(empty.iterdir()) == []
        errors = [line for line in done.stderr.splitlines() if line.startswith("ingest: error:")]
        assert len(errors) == 1 and text in errors[0] and "Traceback" not in done.stderr
