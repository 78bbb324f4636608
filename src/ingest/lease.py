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

A single-process run (`ingest run`) binds the lease to its process: the record names the
host, its boot, the PID and the process's start time, so after a kill -9 the next run on
the same host sees the holder is gone and takes over at once instead of waiting out the
TTL. Holders on another host or boot (or in another PID namespace), shard leases (which
outlive a shard's process until the commit) and records without these fields keep the TTL.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from functools import cache

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
    # Who wrote the record, precisely enough to tell on this host whether it still runs
    # (empty in records of older versions: those holders keep the TTL).
    host_id: str = ""
    boot_id: str = ""
    start_time: str | None = None
    # The lease ends with this process (`ingest run`); a shard's lease outlives its process.
    process_bound: bool = False

    def live(self, now: float) -> bool:
        return not self.released and self.expires_at > now

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"run {self.run_id} (host {self.host}, pid {self.pid}) holds it until {until}"

    def holder_gone(self) -> bool:
        """Whether the process this lease is bound to has provably ended: it ran on this
        host, in this boot and PID namespace, and its PID is gone or now another process."""
        if not self.process_bound or not isinstance(self.pid, int):
            return False
        if not self.host_id or not self.boot_id:
            return False
        if (self.host_id, self.boot_id) != (host_id(), boot_id()):
            return False
        return not process_alive(self.pid, self.start_time)

    @classmethod
    def parse(cls, data: object) -> LeaseRecord:
        """Known fields only: a newer version's extra fields do not make a live lease
        unreadable (which would count as expired)."""
        if not isinstance(data, dict):
            raise TypeError("a lease record is a JSON object")
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


# ---------------------------------------------------------------------- process identity


@cache
def host_id() -> str:
    """This host as PIDs see it: the host name plus, on Linux, the PID namespace (two
    containers on one kernel may share a name and a boot, never a PID namespace)."""
    name = socket.gethostname()
    try:
        return f"{name}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return name


@cache
def boot_id() -> str:
    """This boot of the host ("" when unknown: then no holder is ever declared dead)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        pass
    try:
        import psutil  # not a dependency: used where it happens to be installed

        return f"boot:{int(psutil.boot_time())}"
    except Exception:
        return ""


def _proc_stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the command name may hold spaces."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    """When `pid` started, comparable only on the same host and boot: a reused PID has
    another start time. None when it cannot be told."""
    stat = _proc_stat(pid)
    if stat is not None and len(stat) > 19:
        return f"proc:{stat[19]}"  # field 22, clock ticks since boot
    try:
        import psutil

        return f"psutil:{psutil.Process(pid).create_time():.3f}"
    except Exception:
        return None


def process_alive(pid: int, start_time: str | None) -> bool:
    """Whether `pid` still runs and is the process that started at `start_time`. When that
    cannot be told (no start time recorded or readable), a running PID counts as alive."""
    if pid <= 0:
        return False  # 0 and negative PIDs name process groups
    if os.name != "posix":
        return True  # no signal 0 to probe with: keep the TTL
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except OSError:
        return True
    stat = _proc_stat(pid)
    if stat is not None and stat[0] in ("Z", "X"):
        return False  # exited, not yet reaped by its parent
    if start_time is None:
        return True
    now = process_start_time(pid)
    if now is None or now.partition(":")[0] != start_time.partition(":")[0]:
        return True  # measured another way: cannot compare
    return now == start_time


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
        self.process_bound = False
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
            return LeaseRecord.parse(json.loads(raw or b""))
        except (ValueError, TypeError):
            log.warning("lease record %s is unreadable: treating it as expired", _key(epochs[-1]))
            return LeaseRecord(epochs[-1], "", "?", "?", 0, 0.0, 0.0, released=True)

    # ------------------------------------------------------------------ holding

    def acquire(self, wait: float = 0.0, *, process_bound: bool = False) -> None:
        """Take or join the lease; wait up to `wait` seconds for a live one to end.

        `process_bound`: this process alone holds it until `release` (a whole run), so if
        it dies the next run on this host may take over at once; shards leave it False."""
        give_up = time.monotonic() + wait
        self.process_bound = process_bound
        while True:
            now = time.time()
            current = self.current()
            gone = current is not None and current.live(now) and current.holder_gone()
            if current is not None and current.live(now) and current.holder == self.holder:
                self.epoch = current.epoch  # another shard or attempt of this very run
                # still bound to one process only if the other one is gone
                self.process_bound = process_bound and gone
                self._write(current.acquired_at)
                break
            if current is None or not current.live(now) or gone:
                epoch = current.epoch + 1 if current else 1
                record = self._record(epoch, now)
                if self.store.put_bytes(_key(epoch), _encode(record), if_absent=True):
                    self.epoch = epoch
                    if gone:
                        log.warning(
                            "taking over the run lease of run %s (host %s, pid %d): that "
                            "process is gone (killed?), so its lease need not expire first",
                            current.run_id,
                            current.host,
                            current.pid,
                        )
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
        beat, self._heartbeat = self._heartbeat, None
        # A SIGTERM can interrupt start() before the thread reports that it runs: there is
        # nothing to wait for then (it sees the stop set and ends by itself), and join()
        # would raise instead of letting the run stop cleanly.
        if beat is not None and beat.is_alive():
            beat.join(timeout=10)

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
        if current is not None and _identity(current) != _identity(self._record(0, 0.0)):
            self.process_bound = False  # another process of this run joined: not ours alone
        self._write(current.acquired_at if current else time.time())

    def _write(self, acquired_at: float) -> None:
        assert self.epoch is not None
        record = self._record(self.epoch, time.time())
        record.acquired_at = acquired_at
        self.store.put_bytes(_key(self.epoch), _encode(record))

    def _record(self, epoch: int, now: float) -> LeaseRecord:
        pid = os.getpid()
        return LeaseRecord(
            epoch=epoch,
            holder=self.holder,
            run_id=self.run_id,
            host=socket.gethostname(),
            pid=pid,
            acquired_at=now,
            expires_at=now + self.ttl,
            host_id=host_id(),
            boot_id=boot_id(),
            start_time=_own_start_time(pid),
            process_bound=self.process_bound,
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


@cache
def _own_start_time(pid: int) -> str | None:
    """Cached per PID: a forked child has its own."""
    return process_start_time(pid)


def _identity(record: LeaseRecord) -> tuple[object, ...]:
    return (record.host_id, record.boot_id, record.pid, record.start_time)


def _encode(record: LeaseRecord) -> bytes:
    return json.dumps(asdict(record), sort_keys=True).encode()
