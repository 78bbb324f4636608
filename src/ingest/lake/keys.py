"""Committed keys: has this link or article been committed before? Asked per key.

Every committed article leaves one small marker object per key that names it: its article
id and the hashes of the link the feed gave, the final URL and the canonical URL (those
are the same hashes `ids.url_key` computes before a fetch). A run asks only about its own
candidates, one HEAD each, so what it costs depends on the run and never on how many
articles were committed before: no run loads every key.

Markers are written after each commit from the rows it added, and the watermark says up to
which table version they are complete. A run that finds commits above the watermark (a
process killed between its commit and its markers) writes theirs first, from the log:
`roll_forward`. Markers are idempotent, so doing that twice costs requests, not rows.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
from deltalake import DeltaTable

from ingest import ids
from ingest.lake.tables import ARTICLES, commit_entry, read_data_file
from ingest.store import Store

log = logging.getLogger(__name__)

KEYS = "_keys/"
WATERMARK = "_state/keys.json"
REQUEST_THREADS = 16
KEY_COLUMNS = ["article_id", "url", "final_url", "canonical_url"]


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _requests() -> ThreadPoolExecutor:
    """One pool for every key lookup and marker write of the process (threads are made on
    first use, so a process that forks workers early has none yet)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="keys")
        return _pool


def marker_key(key: str) -> str:
    return f"{KEYS}{key[:3]}/{key}"


def keys_of_rows(table: pa.Table) -> dict[str, str]:
    """Every key that names one of these articles -> its article id."""
    found: dict[str, str] = {}
    columns = {name: table[name].to_pylist() for name in KEY_COLUMNS}
    for aid, url, final, canonical in zip(*columns.values(), strict=True):
        found[aid] = aid
        for link in (url, final, canonical):
            if link:
                found[ids.url_key(link)] = aid
    return found


class KeyIndex:
    def __init__(self, store: Store) -> None:
        self.store = store

    def committed(self, keys: Iterable[str]) -> set[str]:
        """Those of `keys` that an earlier commit named."""
        wanted = sorted(set(keys))
        if not wanted:
            return set()
        if len(wanted) == 1:
            return set(wanted) if self.store.exists(marker_key(wanted[0])) else set()
        found = _requests().map(lambda k: self.store.exists(marker_key(k)), wanted)
        return {k for k, hit in zip(wanted, found, strict=True) if hit}

    def mark(self, keys: dict[str, str]) -> None:
        """Write the markers (create-if-absent: an existing one is left as it is)."""
        if not keys:
            return
        items = sorted(keys.items())

        def put(item: tuple[str, str]) -> None:
            self.store.put_bytes(marker_key(item[0]), item[1].encode(), if_absent=True)

        list(_requests().map(put, items))

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
            adds = [a["add"] for a in actions if "add" in a and a["add"].get("dataChange", True)]
            if adds:
                log.info("recording keys of articles commit %d", version)
            for add in adds:
                self.mark(
                    keys_of_rows(read_data_file(self.store, ARTICLES, add["path"], KEY_COLUMNS))
                )
        if head >= start:
            self.advance(head)

    def rebuild(self, table: DeltaTable) -> int:
        """Markers for every row the table holds now, read file by file (maintenance only:
        this reads the whole table). For when the log no longer reaches the watermark."""
        version = table.version()
        paths = pa.table(table.get_add_actions())["path"].to_pylist()
        for path in paths:
            self.mark(keys_of_rows(read_data_file(self.store, ARTICLES, path, KEY_COLUMNS)))
        self.advance(version)
        return len(paths)
