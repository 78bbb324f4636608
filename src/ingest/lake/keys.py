"""Committed keys: has this link or article been committed before? Asked per key.

Every committed article leaves one small marker object per key that names it: its article
id and the hashes of the link the feed gave, the final URL and the canonical URL (those
are the same hashes `ids.url_key` computes before a fetch). A run asks only about its own
candidates, one HEAD each, so what it costs depends on the run and never on how many
articles were committed before: no run loads every key.

A marker holds the article id, the ingest date (the table partition of its row) and the
content hash of its body: what a later run needs to check an updated article and update
its row in place without reading the table (a MERGE limited to that partition).

Markers are written after each commit from the rows it added, and the watermark says up to
which table version they are complete. A run that finds commits above the watermark (a
process killed between its commit and its markers) writes theirs first, from the log:
`roll_forward`. Markers are idempotent, so doing that twice costs requests, not rows. On a
local store a new marker is made durable by one file-system sync before the watermark
moves, not one by one, so a crash before that sync can leave one empty: `roll_forward`
rewrites those too.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pyarrow as pa
from deltalake import DeltaTable

from ingest import ids
from ingest.lake.tables import ARTICLES, commit_entry, commit_info, read_data_file
from ingest.store import Store

log = logging.getLogger(__name__)

KEYS = "_keys/"
WATERMARK = "_state/keys.json"
KEY_COLUMNS = ["article_id", "url", "final_url", "canonical_url", "content_sha256"]
_PARTITION_IN_PATH = re.compile(r"(?:^|/)ingest_date=(\d{4}-\d\d-\d\d)/")


@dataclass(frozen=True)
class Marker:
    """What a committed key points at. Markers written before ingest dates and hashes were
    kept hold the article id only."""

    article_id: str
    ingest_date: str | None = None
    content_sha256: str | None = None

    def encode(self) -> bytes:
        fields = [self.article_id, self.ingest_date or "-", self.content_sha256 or "-"]
        return " ".join(fields).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Marker:
        parts = raw.decode("ascii", errors="replace").split()
        if not parts:
            raise ValueError("empty key marker")
        date, sha = [*parts[1:3], "-", "-"][:2]
        return cls(parts[0], None if date == "-" else date, None if sha == "-" else sha)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
T = TypeVar("T")
R = TypeVar("R")


def _requests(threads: int) -> ThreadPoolExecutor:
    """One pool for every key lookup and marker write of the process (threads are made on
    first use, so a process that forks workers early has none yet)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(threads, thread_name_prefix="keys")
        return _pool


def _each(store: Store, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """fn over items, as many at once as the store is worth (in order)."""
    threads = store.request_threads
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    return list(_requests(threads).map(fn, items))


def _unreadable(raw: bytes | None) -> bool:
    if raw is None:
        return False  # deleted meanwhile: not ours to bring back
    try:
        Marker.decode(raw)
    except ValueError:
        return True
    return False


def marker_key(key: str) -> str:
    return f"{KEYS}{key[:3]}/{key}"


def keys_of_rows(table: pa.Table, ingest_date: str | None) -> dict[str, Marker]:
    """Every key that names one of these articles (rows of one partition) -> its marker."""
    found: dict[str, Marker] = {}
    columns = {name: table[name].to_pylist() for name in KEY_COLUMNS}
    for aid, url, final, canonical, sha in zip(*columns.values(), strict=True):
        marker = Marker(aid, ingest_date, sha)
        found[aid] = marker
        for link in (url, final, canonical):
            if link:
                found[ids.url_key(link)] = marker
    return found


def partition_of(path: str) -> str | None:
    """The ingest date a data file's path names (Hive-style directory)."""
    match = _PARTITION_IN_PATH.search(path)
    return match.group(1) if match else None


class KeyIndex:
    def __init__(self, store: Store) -> None:
        self.store = store

    def committed(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` that an earlier commit named."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        found = _each(self.store, lambda k: self.store.exists(marker_key(k)), wanted)
        return {k for k, hit in zip(wanted, found, strict=True) if hit}

    def read(self, key: str) -> Marker | None:
        """The marker of one committed key (one GET), None when the key is not committed."""
        raw = self.store.get_bytes(marker_key(key))
        if raw is None:
            return None
        try:
            return Marker.decode(raw)
        except ValueError:
            return None

    def mark(self, keys: dict[str, Marker], *, replace: bool = False, mend: bool = False) -> None:
        """Write the markers: create-if-absent (an existing one is left as it is), or
        `replace` them (an article updated in place has a new content hash). `mend`: an
        existing marker that does not read (emptied by a crash before the sync) is
        rewritten."""
        if not keys:
            return
        items = sorted(keys.items())

        def put(item: tuple[str, Marker]) -> None:
            key, marker = marker_key(item[0]), item[1].encode()
            if self.store.put_bytes(key, marker, if_absent=not replace, durable=False):
                return
            if mend and _unreadable(self.store.get_bytes(key)):
                log.warning("rewriting the unreadable key marker %s", key)
                self.store.put_bytes(key, marker, durable=False)

        _each(self.store, put, items)
        # durable all at once before anything (the watermark) says they are there: on a
        # local store one file-system sync instead of an fsync per marker
        self.store.sync()

    # ------------------------------------------------------------------ the watermark

    def watermark(self) -> int:
        raw = self.store.get_bytes(WATERMARK)
        try:
            return int(json.loads(raw)["version"]) if raw else -1
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable: rebuilding the key markers from the log", WATERMARK)
            return -1

    def advance(self, version: int) -> None:
        self.store.put_bytes(WATERMARK, json.dumps({"version": version}).encode())

    def roll_forward(self, head: int) -> None:
        """Markers for every data commit in (watermark, head]."""
        start = self.watermark() + 1
        for version in range(start, head + 1):
            actions = commit_entry(self.store, ARTICLES, version)
            if actions is None:
                raise RuntimeError(
                    f"articles commit {version} is gone from the log before its keys were "
                    "recorded; run `ingest maintain --rebuild-keys`"
                )
            if "newsflow.rewrite" in commit_info(actions):
                # an in-place update rewrites whole files of committed rows: no new keys,
                # and the update itself rewrote the markers of the rows it changed
                continue
            adds = [a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)]
            if adds:
                log.info("recording keys of articles commit %d", version)
            for add in adds:
                rows = read_data_file(self.store, ARTICLES, add["path"], KEY_COLUMNS)
                date = (add.get("partitionValues") or {}).get("ingest_date")
                self.mark(keys_of_rows(rows, date or partition_of(add["path"])), mend=True)
        if head >= start:
            self.advance(head)

    def rebuild(self, table: DeltaTable) -> int:
        """Markers for every row the table holds now, read file by file (maintenance only:
        this reads the whole table). For when the log no longer reaches the watermark."""
        version = table.version()
        paths = pa.table(table.get_add_actions())["path"].to_pylist()
        for path in paths:
            rows = read_data_file(self.store, ARTICLES, path, KEY_COLUMNS)
            self.mark(keys_of_rows(rows, partition_of(path)), replace=True)
        self.advance(version)
        return len(paths)
