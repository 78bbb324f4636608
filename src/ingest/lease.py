"""The run lease: one run at a time works on a store; a dead holder's lease expires.

Two overlapping runs (cron firing while the last run is still busy) would both poll every
feed and fetch every page, write every reject twice and lose feed-state counters. The
lease makes the second run wait or stop with a clear message instead.

It is built on the one atomic primitive every store has, create-if-absent: the lease is
a chain of epochs `_state/lease/<epoch>.json`, the newest one rules. A run takes the lease
by creating the next epoch, so of two runs racing for an expired or released lease
exactly one wins. The holder rewrites its own epoch to extend the expiry (a heartbeat
thread) and marks it released when done. The shards of one run share the lease: it is
held by a run id, not by a process, so a retried shard or the commit task need not wait.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from ingest.store import Store

log = logging.getLogger(__name__)

LEASES = "_state/lease/"
KEEP_EPOCHS = 3  # older epochs are deleted by the winner of a new one


class StoreBusy(Exception):
    """Another run holds the store's lease."""


@dataclass
class LeaseRecord:
    epoch: int
    holder: str  # the run key: every shard and retry of one run shares the lease
    run_id: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float
    released: bool = False

    def live(self, now: float) -> bool:
        return not self.released and self.expires_at > now

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"run {self.run_id} (host {self.host}, pid {self.pid}) holds it until {until}"


def _key(epoch: int) -> str:
    return f"{LEASES}{epoch:012d}.json"


class RunLease:
    """Hold a store for one run: `acquire`, then `release` (or let it expire)."""

    def __init__(self, store: Store, holder: str, run_id: str, ttl: float = 120.0) -> None:
        self.store = store
        self.holder = holder
        self.run_id = run_id
        self.ttl = ttl
        self.epoch: int | None = None
        self.lost = False
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # ------------------------------------------------------------------ reading

    def _epochs(self) -> list[int]:
        epochs = []
        for key in self.store.list(LEASES):
            name = key[len(LEASES) :]
            if name.endswith(".json") and name[:-5].isdigit():
                epochs.append(int(name[:-5]))
        return sorted(epochs)

    def current(self) -> LeaseRecord | None:
        """The newest lease record; an unreadable one counts as expired."""
        epochs = self._epochs()
        if not epochs:
            return None
        raw = self.store.get_bytes(_key(epochs[-1]))
        try:
            return LeaseRecord(**json.loads(raw or b""))
        except (ValueError, TypeError):
            log.warning("lease record %s is unreadable: treating it as expired", _key(epochs[-1]))
            return LeaseRecord(epochs[-1], "", "?", "?", 0, 0.0, 0.0, released=True)

    # ------------------------------------------------------------------ holding

    def acquire(self, wait: float = 0.0) -> None:
        """Take or join the lease; wait up to `wait` seconds for a live one to end."""
        give_up = time.monotonic() + wait
        while True:
            now = time.time()
            current = self.current()
            if current is not None and current.live(now) and current.holder == self.holder:
                self.epoch = current.epoch  # another shard or attempt of this very run
                self._write(current.acquired_at)
                break
            if current is None or not current.live(now):
                epoch = current.epoch + 1 if current else 1
                record = self._record(epoch, now)
                if self.store.put_bytes(_key(epoch), _encode(record), if_absent=True):
                    self.epoch = epoch
                    self._forget_before(epoch - KEEP_EPOCHS + 1)
                    break
                continue  # another run took this epoch first: look again
            left = give_up - time.monotonic()
            if left <= 0:
                raise StoreBusy(
                    f"store {self.store.uri} is busy: {current.describe()}; "
                    "this run waits with --wait SECONDS, or try again later"
                )
            log.info("store busy: %s; waiting", current.describe())
            time.sleep(min(5.0, left, max(0.05, current.expires_at - now)))
        self._start_heartbeat()

    def release(self) -> None:
        """End the lease now (the next run need not wait for it to expire)."""
        self.stop_heartbeat()
        if self.epoch is None or self.lost:
            return
        current = self.current()
        if current is not None and current.epoch == self.epoch and current.holder == self.holder:
            current.released = True
            self.store.put_bytes(_key(self.epoch), _encode(current))
        self.epoch = None

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
            self._heartbeat = None

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name="run-lease", daemon=True)
        self._heartbeat.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self._renew()
            except Exception:  # a store hiccup: the next beat tries again before expiry
                log.warning("could not renew the run lease", exc_info=True)

    def _renew(self) -> None:
        if self.epoch is None:
            return
        newest = self._epochs()
        if newest and newest[-1] != self.epoch:
            # We stalled past the expiry and another run took over: stop claiming it.
            # What this run stages still commits exactly once; it just is not alone.
            self.lost = True
            self._stop.set()
            log.error("the run lease expired and run %s took the store over", newest[-1])
            return
        current = self.current()
        self._write(current.acquired_at if current else time.time())

    def _write(self, acquired_at: float) -> None:
        assert self.epoch is not None
        record = self._record(self.epoch, time.time())
        record.acquired_at = acquired_at
        self.store.put_bytes(_key(self.epoch), _encode(record))

    def _record(self, epoch: int, now: float) -> LeaseRecord:
        return LeaseRecord(
            epoch=epoch,
            holder=self.holder,
            run_id=self.run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            acquired_at=now,
            expires_at=now + self.ttl,
        )

    def _forget_before(self, epoch: int) -> None:
        for old in self._epochs():
            if old < epoch:
                self.store.delete(_key(old))


def release_if_held(store: Store, holder: str) -> None:
    """Release the lease when `holder` (a run key) has it: the commit ends a sharded run."""
    lease = RunLease(store, holder, holder)
    current = lease.current()
    if current is not None and current.holder == holder and not current.released:
        lease.epoch = current.epoch
        lease.release()


def _encode(record: LeaseRecord) -> bytes:
    return json.dumps(asdict(record), sort_keys=True).encode()
