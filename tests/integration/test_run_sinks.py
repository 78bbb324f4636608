"""A run's writers on a real directory store: closing writes the Parquet parts and the WARC
file at once, and a failure of either ends the close with that failure."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.config import Settings
from ingest.net import Response
from ingest.normalize import reject_row
from ingest.run.context import RunContext
from ingest.run.sinks import Sinks
from ingest.store import LocalStore, StoreError


class FailingRawStore(LocalStore):
    """A directory whose WARC writes fail, as a full disk would fail them."""

    def put_bytes(self, key: str, data: bytes, **kwargs: object) -> bool:
        if key.endswith(".warc.gz"):
            raise StoreError(f"cannot write {key}: no space left on device")
        return super().put_bytes(key, data, **kwargs)  # type: ignore[arg-type]


class RecordingStore(LocalStore):
    """Notes which thread wrote each staged object."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writers: dict[str, str] = {}

    def put_bytes(self, key: str, data: bytes, **kwargs: object) -> bool:
        self.writers[key.rsplit("/", 1)[-1]] = threading.current_thread().name
        return super().put_bytes(key, data, **kwargs)  # type: ignore[arg-type]

    def put_file(self, key: str, path: Path) -> None:
        self.writers[key.rsplit("/", 1)[-1]] = threading.current_thread().name
        super().put_file(key, path)


def _filled(store: LocalStore) -> Sinks:
    ctx = RunContext.new(store, Settings(archive_raw=True))
    sinks = Sinks(ctx)
    sinks.rejects.add(
        reject_row(
            url="https://p.example/a",
            source="wire",
            feed_url="https://p.example/feed.xml",
            stage="fetch",
            reason="http_404",
            detail="https://p.example/a answered 404",
            http_status=404,
            transient=False,
            run_id=ctx.run_id,
        )
    )
    page = b"<html><body><p>" + b"Words of an article. " * 50 + b"</p></body></html>"
    resp = Response(
        "https://p.example/b",
        "https://p.example/b",
        200,
        {"content-type": "text/html; charset=utf-8"},
        page,
        ip_address="127.0.0.1",
        request_headers={"User-Agent": "newsflow-test"},
    )
    sinks.archive("https://p.example/b", resp, datetime.now(UTC))
    return sinks


def test_close_writes_parts_and_the_warc_file_side_by_side(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "lake")
    parts = _filled(store).close()
    assert [p.kind for p in parts] == ["rejects", "raw"]  # the order a commit reads them in
    for part in parts:
        assert store.exists(part.staged)
    raw = next(p for p in parts if p.kind == "raw")
    rejects = next(p for p in parts if p.kind == "rejects")
    writers = store.writers
    assert writers[raw.staged.rsplit("/", 1)[-1]] != writers[rejects.staged.rsplit("/", 1)[-1]]


def test_a_failing_warc_write_fails_the_close_after_the_parts_are_written(
    tmp_path: Path,
) -> None:
    store = FailingRawStore(tmp_path / "lake")
    sinks = _filled(store)
    with pytest.raises(StoreError, match="no space left"):
        sinks.close()
    staged = list(store.list("_staging/"))
    assert any("rejects" in key for key in staged)  # the parts' close ran to its end
    assert not any(key.endswith(".warc.gz") for key in staged)
    assert not [t for t in threading.enumerate() if t.name.startswith("raw-close")]
