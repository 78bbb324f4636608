"""Convert a store of the earlier layout (a home-made manifest log) to the Delta tables.

The earlier layout kept committed Parquet parts under `articles/` and `rejects/`, a
manifest per commit in `_manifests/` (a manifest without its `.done` marker was committed
but not yet copied out of `_staging/`), one state file per feed and id checkpoints.

`migrate` reads every committed part once, in commit order, and appends its rows to each
Delta table in one transaction (app transaction `newsflow-migration`), so a kill at any
point leaves either the old layout or the new tables, never half of each; running it again
finishes what is left. Then it records the key markers, moves feed state into the one state
object and deletes the old layout's files.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.lake.commit import Lake
from ingest.lake.tables import (
    ARTICLES,
    LEGACY_FIRST_MANIFEST,
    REJECTS,
    ensure_table,
    is_legacy,
    open_table,
    table_schema,
)
from ingest.lake.write import append, with_partition
from ingest.state import write_feed_states
from ingest.store import Store, StoreError

log = logging.getLogger(__name__)

MANIFESTS = "_manifests/"
MIGRATION = "newsflow-migration"
LEGACY_PREFIXES = (MANIFESTS, "_state/runs/", "_state/ids/", "_state/feeds/")


@dataclass
class MigrationResult:
    articles: int
    rejects: int
    feeds: int
    already_done: bool


def _manifests(store: Store) -> list[dict[str, Any]]:
    out = []
    for key in store.list(MANIFESTS):
        name = key[len(MANIFESTS) :]
        if name.endswith(".json") and name[:-5].isdigit():
            raw = store.get_bytes(key)
            if raw is None:
                raise StoreError(f"{key} vanished while migrating")
            manifest = json.loads(raw)
            manifest["published"] = store.exists(f"{MANIFESTS}{name[:-5]}.done")
            out.append(manifest)
    return sorted(out, key=lambda m: m["seq"])


def _part_key(store: Store, part: dict[str, Any]) -> str:
    """Where a committed part is: its final key, or still its staged one (unpublished)."""
    for key in (part["final"], part["staged"]):
        if store.exists(key):
            return key
    raise StoreError(f"committed part missing in both places: {part['final']}")


def _rows(store: Store, manifests: list[dict[str, Any]], kind: str) -> Iterator[pa.RecordBatch]:
    target = table_schema(kind)
    seen: set[str] = set()
    for manifest in manifests:
        for part in manifest["parts"]:
            if part["kind"] != kind:
                continue
            raw = store.get_bytes(_part_key(store, part))
            table = pq.read_table(io.BytesIO(raw or b""))
            if kind == ARTICLES:  # committed once each by construction; make sure
                keep = [i for i, a in enumerate(table["article_id"].to_pylist()) if a not in seen]
                seen.update(table["article_id"].to_pylist())
                table = table.take(keep)
            day = part["final"].split("ingest_date=", 1)[1].split("/", 1)[0]
            yield from with_partition(table, day, target).to_batches()


def _feed_states(store: Store, manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each feed's newest state: its file, or an unpublished commit's newer copy."""
    states: dict[str, dict[str, Any]] = {}
    for key in store.list("_state/feeds/"):
        raw = store.get_bytes(key)
        try:
            data = json.loads(raw or b"")
            states[data["name"]] = data
        except (ValueError, KeyError, TypeError):
            log.warning("feed state %s is unreadable: that feed starts afresh", key)
    for manifest in manifests:
        if not manifest["published"]:
            states.update(manifest.get("feed_states", {}))
    return states


def migrate(store: Store) -> MigrationResult:
    """Idempotent: a store already migrated is left as it is."""
    if not is_legacy(store):
        if open_table(store, ARTICLES) is None:
            raise StoreError(f"store {store.uri} holds no earlier layout to migrate")
        return MigrationResult(0, 0, 0, already_done=True)
    manifests = _manifests(store)
    counts = {}
    for kind in (ARTICLES, REJECTS):
        table = ensure_table(store, kind, allow_legacy=True)
        if table.transaction_version(MIGRATION) is None:
            reader = pa.RecordBatchReader.from_batches(
                table_schema(kind), _rows(store, manifests, kind)
            )
            append(
                table,
                kind,
                reader,
                MIGRATION,
                table.version() + 1,
                {"newsflow.run_key": MIGRATION, "newsflow.run_id": MIGRATION},
            )
        table.update_incremental()
        counts[kind] = table.count()
    states = _feed_states(store, manifests)
    write_feed_states(store, states)
    Lake(store).keys.roll_forward(ensure_table(store, ARTICLES, allow_legacy=True).version())
    _remove_legacy(store, manifests)
    log.info("migrated %d articles and %d rejects", counts[ARTICLES], counts[REJECTS])
    return MigrationResult(counts[ARTICLES], counts[REJECTS], len(states), already_done=False)


def _remove_legacy(store: Store, manifests: list[dict[str, Any]]) -> None:
    """The old parts (now copied into the tables) and bookkeeping; commit 1 goes last, so
    an interrupted clean-up is finished by the next `migrate`."""
    for manifest in manifests:
        for part in manifest["parts"]:
            store.delete(part["final"])
            store.delete(part["staged"])
    for prefix in LEGACY_PREFIXES:
        for key in list(store.list(prefix)):
            if key != LEGACY_FIRST_MANIFEST:
                store.delete(key)
    store.delete(LEGACY_FIRST_MANIFEST)
