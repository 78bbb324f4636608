"""Parquet parts, the commit log and recovery: how rows become visible exactly once.

Protocol (the same for a single process and for Airflow shards + a commit task):

1. Parts are written under `_staging/<run>/…` where no reader globs.
2. Commit appends `_manifests/<seq>.json` with an atomic create-if-absent. That object
   is the commit point: it lists the parts, the article ids and the feed states.
   Article ids already committed by earlier manifests are filtered out first; if
   another committer won the same sequence number, reload and retry.
3. Publish copies each part to its final, deterministic key under `articles/` or
   `rejects/` (each copy is atomic), writes feed state, then `_manifests/<seq>.done`.
4. Every run starts by rolling forward any manifest without its `.done` marker, so a
   process killed between 2 and 3 loses nothing and duplicates nothing.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ingest.schema import Schema
from ingest.store import Store

log = logging.getLogger(__name__)

MANIFESTS = "_manifests/"
STAGING = "_staging/"
RUNS = "_state/runs/"
CHECKPOINTS = "_state/ids/"
CHECKPOINT_EVERY = 100
ROW_GROUP_ROWS = 2_000
# Low-cardinality string columns get dictionary encoding; free text does not.
DICTIONARY_COLUMNS = {
    "source", "feed_url", "language", "site_name", "published_at_source", "run_id",
    "stage", "reason",
}  # fmt: skip


def utcnow() -> datetime:
    return datetime.now(UTC)


def write_parquet(table: pa.Table, path: Path | io.BytesIO) -> None:
    """zstd, statistics on, dictionaries only where they pay off."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        write_statistics=True,
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=[c for c in table.column_names if c in DICTIONARY_COLUMNS],
    )


@dataclass
class PartInfo:
    kind: str  # "articles" | "rejects"
    staged: str
    final: str
    rows: int


class PartWriter:
    """Buffers up to `part_rows` rows, then sorts and writes one Parquet part to staging.

    Memory is bounded by one part, whatever the size of the run.
    """

    def __init__(
        self,
        store: Store,
        schema: Schema,
        kind: str,
        run_key: str,
        ingest_date: str,
        part_rows: int,
        shard: int = 0,
        attempt: str = "a",
    ) -> None:
        self.store = store
        self.schema = schema
        self.kind = kind
        self.run_key = run_key
        self.ingest_date = ingest_date
        self.part_rows = part_rows
        self.shard = shard
        self.attempt = attempt  # two attempts of one run (zombie + retry) never share keys
        self.parts: list[PartInfo] = []
        self._rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self.schema.arrow)
        self._rows = []
        if self.schema.sort_key:
            table = table.sort_by([(k, "ascending") for k in self.schema.sort_key])
        n = len(self.parts)
        name = f"part-{self.run_key}-{self.shard:03d}-{n:05d}.parquet"
        final = f"{self.kind}/ingest_date={self.ingest_date}/{name}"
        staged = f"{STAGING}{self.run_key}/{self.attempt}/{final}"
        # In memory, not a scratch file: nothing is left behind on any exit path, and one
        # compressed part is far smaller than the rows it was built from.
        buf = io.BytesIO()
        write_parquet(table, buf)
        self.store.put_bytes(staged, buf.getvalue())
        self.parts.append(PartInfo(self.kind, staged, final, table.num_rows))

    def close(self) -> list[PartInfo]:
        self.flush()
        return self.parts


@dataclass
class CommitRequest:
    """Everything one run wants to make visible, gathered from its shards."""

    run_id: str
    run_key: str
    parts: list[PartInfo]
    article_ids: list[str]
    url_keys: list[str]
    feed_states: dict[str, dict[str, Any]]
    report: dict[str, Any]
    # Index dates (UTC publication day, else fetch day) of the articles: what to rebuild.
    index_dates: list[str] = field(default_factory=list)


@dataclass
class CommitResult:
    seq: int
    run_id: str
    already_committed: bool
    articles_committed: int
    duplicates_dropped: int
    dates: list[str]  # ingest_date partitions written
    index_dates: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


class CommittedIds:
    """Ids of every committed article, plus the link keys that led to them."""

    def __init__(self) -> None:
        self.article_ids: set[str] = set()
        self.url_keys: set[str] = set()
        self.seq = 0

    def add_manifest(self, manifest: dict[str, Any]) -> None:
        self.article_ids.update(manifest["article_ids"])
        self.url_keys.update(manifest["url_keys"])
        self.seq = max(self.seq, manifest["seq"])


class Lake:
    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ reading the log

    def manifest_seqs(self) -> list[int]:
        seqs = []
        for key in self.store.list(MANIFESTS):
            name = key[len(MANIFESTS) :]
            if name.endswith(".json") and name[:-5].isdigit():
                seqs.append(int(name[:-5]))
        return sorted(seqs)

    def read_manifest(self, seq: int) -> dict[str, Any]:
        raw = self.store.get_bytes(f"{MANIFESTS}{seq:010d}.json")
        if raw is None:
            raise FileNotFoundError(f"manifest {seq} missing")
        return json.loads(raw)

    def committed_ids(self, since: CommittedIds | None = None) -> CommittedIds:
        """Load from the newest checkpoint, then every manifest after it."""
        ids = since or CommittedIds()
        seqs = [s for s in self.manifest_seqs() if s > ids.seq]
        if not seqs:
            return ids
        if since is None:
            checkpoint = self._latest_checkpoint(seqs[-1])
            if checkpoint is not None:
                cp_seq, table = checkpoint
                ids.article_ids.update(
                    table.filter(pc.equal(table["kind"], "article"))["key"].to_pylist()
                )
                ids.url_keys.update(table.filter(pc.equal(table["kind"], "url"))["key"].to_pylist())
                ids.seq = cp_seq
                seqs = [s for s in seqs if s > cp_seq]
        for seq in seqs:
            ids.add_manifest(self.read_manifest(seq))
        return ids

    def _latest_checkpoint(self, upto: int) -> tuple[int, pa.Table] | None:
        best = None
        for key in self.store.list(CHECKPOINTS):
            name = key.rsplit("/", 1)[-1]
            if name.startswith("checkpoint-") and name.endswith(".parquet"):
                seq = int(name[len("checkpoint-") : -len(".parquet")])
                if seq <= upto and (best is None or seq > best[0]):
                    best = (seq, key)
        if best is None:
            return None
        raw = self.store.get_bytes(best[1])
        if raw is None:
            return None
        return best[0], pq.read_table(io.BytesIO(raw))

    def _write_checkpoint(self, ids: CommittedIds) -> None:
        keys = sorted(ids.article_ids) + sorted(ids.url_keys)
        kinds = ["article"] * len(ids.article_ids) + ["url"] * len(ids.url_keys)
        table = pa.table({"kind": kinds, "key": keys})
        buf = io.BytesIO()
        write_parquet(table, buf)
        self.store.put_bytes(f"{CHECKPOINTS}checkpoint-{ids.seq:010d}.parquet", buf.getvalue())

    def committed_run(self, run_key: str) -> dict[str, Any] | None:
        raw = self.store.get_bytes(f"{RUNS}{run_key}.json")
        return json.loads(raw) if raw else None

    # ------------------------------------------------------------------ commit + publish

    def recover(self) -> list[int]:
        """Finish publishing every manifest that lacks its .done marker (roll forward)."""
        done = {
            int(k[len(MANIFESTS) : -5])
            for k in self.store.list(MANIFESTS)
            if k.endswith(".done") and k[len(MANIFESTS) : -5].isdigit()
        }
        rolled = []
        for seq in self.manifest_seqs():
            if seq not in done:
                log.warning("rolling forward commit %d left unpublished by an earlier run", seq)
                self._publish(self.read_manifest(seq))
                rolled.append(seq)
        staged_runs = {k[len(STAGING) :].split("/", 1)[0] for k in self.store.list(STAGING)}
        for run_key in sorted(staged_runs):
            if self.committed_run(run_key) is not None:
                self._drop_staging(run_key)
        return rolled

    def commit(self, request: CommitRequest) -> CommitResult:
        """Append one manifest to the log and publish it; idempotent per run id."""
        self.recover()
        previous = self.committed_run(request.run_key)
        if previous is not None:
            return self._already(previous)
        ids = self.committed_ids()
        while True:
            parts, accepted, dropped = self._filter_parts(request, ids)
            seq = ids.seq + 1
            manifest = {
                "seq": seq,
                "run_id": request.run_id,
                "run_key": request.run_key,
                "committed_at": utcnow().isoformat(),
                "parts": [asdict(p) for p in parts],
                "article_ids": sorted(accepted),
                "url_keys": sorted(set(request.url_keys)),
                "dates": dates_of(p for p in parts if p.kind == "articles"),
                "index_dates": sorted(set(request.index_dates)) if accepted else [],
                "feed_states": request.feed_states,
                "duplicates_dropped": dropped,
                "report": request.report,
            }
            body = json.dumps(manifest, sort_keys=True).encode()
            if self.store.put_bytes(f"{MANIFESTS}{seq:010d}.json", body, if_absent=True):
                break
            # Another committer took this sequence number: catch up and filter again.
            log.info("commit %d taken by a concurrent run; retrying", seq)
            self.recover()
            previous = self.committed_run(request.run_key)
            if previous is not None:
                return self._already(previous)
            ids = self.committed_ids(ids)
        self._publish(manifest)
        if seq % CHECKPOINT_EVERY == 0:
            ids.add_manifest(manifest)
            self._write_checkpoint(ids)
        return CommitResult(
            seq=seq,
            run_id=request.run_id,
            already_committed=False,
            articles_committed=len(accepted),
            duplicates_dropped=dropped,
            dates=manifest["dates"],
            index_dates=manifest["index_dates"],
            report=request.report,
        )

    def _already(self, previous: dict[str, Any]) -> CommitResult:
        manifest = self.read_manifest(previous["seq"])
        return CommitResult(
            seq=manifest["seq"],
            run_id=manifest["run_id"],
            already_committed=True,
            articles_committed=len(manifest["article_ids"]),
            duplicates_dropped=manifest.get("duplicates_dropped", 0),
            dates=manifest["dates"],
            index_dates=manifest.get("index_dates", []),
            report=manifest.get("report", {}),
        )

    def _filter_parts(
        self, request: CommitRequest, ids: CommittedIds
    ) -> tuple[list[PartInfo], set[str], int]:
        """Drop rows whose article is already committed (or repeated across shards)."""
        wanted = set(request.article_ids)
        clash = wanted & ids.article_ids
        if not clash and len(wanted) == len(request.article_ids):
            return request.parts, wanted, 0
        accepted: set[str] = set()
        kept: list[PartInfo] = []
        dropped = 0
        for part in request.parts:
            if part.kind != "articles":
                kept.append(part)
                continue
            raw = self.store.get_bytes(part.staged)
            if raw is None:
                raise FileNotFoundError(f"staged part missing: {part.staged}")
            table = pq.read_table(io.BytesIO(raw))
            keep = []
            for i, aid in enumerate(table["article_id"].to_pylist()):
                if aid in ids.article_ids or aid in accepted:
                    dropped += 1
                else:
                    accepted.add(aid)
                    keep.append(i)
            if len(keep) == table.num_rows:
                kept.append(part)
                continue
            if keep:
                filtered = table.take(keep)
                staged = part.staged.replace(".parquet", f"-f{ids.seq}.parquet")
                buf = io.BytesIO()
                write_parquet(filtered, buf)
                self.store.put_bytes(staged, buf.getvalue())
                kept.append(PartInfo(part.kind, staged, part.final, filtered.num_rows))
        return kept, accepted, dropped

    def _publish(self, manifest: dict[str, Any]) -> None:
        """Idempotent: every step may run again after a crash with the same outcome."""
        from ingest.state import write_feed_states

        seq = manifest["seq"]
        for part in manifest["parts"]:
            if not self.store.exists(part["final"]):
                self.store.copy(part["staged"], part["final"])
        write_feed_states(self.store, manifest["feed_states"])
        self.store.put_bytes(
            f"{RUNS}{manifest['run_key']}.json",
            json.dumps({"seq": seq, "run_id": manifest["run_id"]}).encode(),
        )
        self.store.put_bytes(f"{MANIFESTS}{seq:010d}.done", b"")
        self._drop_staging(manifest["run_key"])

    def _drop_staging(self, run_key: str) -> None:
        """Staging of a committed run is garbage: its own parts and any other attempt's."""
        for key in list(self.store.list(f"{STAGING}{run_key}/")):
            self.store.delete(key)


def read_committed(store: Store, kind: str = "articles") -> pa.Table:
    """Every committed row of `kind` (for tests and small tools; warehouses glob instead)."""
    tables = []
    for key in store.list(f"{kind}/"):
        if key.endswith(".parquet"):
            raw = store.get_bytes(key)
            if raw is not None:
                tables.append(pq.read_table(io.BytesIO(raw)))
    if not tables:
        from ingest import schema

        return (schema.article() if kind == "articles" else schema.reject()).arrow.empty_table()
    return pa.concat_tables(tables)


def dates_of(parts: Iterable[PartInfo]) -> list[str]:
    return sorted({p.final.split("ingest_date=")[1].split("/")[0] for p in parts})
