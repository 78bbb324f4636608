"""The run lease on both stores: one run at a time, shards share it, dead holders expire."""

from __future__ import annotations

import threading
import time

import pytest

from ingest.lease import LEASES, RunLease, StoreBusy, release_if_held
from ingest.store import Store

pytestmark = pytest.mark.integration


def test_second_run_is_refused_with_a_clear_message(store: Store) -> None:
    first = RunLease(store, "run-a", "run-a", ttl=30)
    first.acquire()
    try:
        with pytest.raises(StoreBusy) as err:
            RunLease(store, "run-b", "run-b", ttl=30).acquire()
        message = str(err.value)
        assert "busy" in message and "run-a" in message and "--wait" in message
    finally:
        first.release()
    second = RunLease(store, "run-b", "run-b", ttl=30)
    second.acquire()  # released: no waiting for the expiry
    second.release()


def test_shards_and_retries_of_one_run_share_the_lease(store: Store) -> None:
    shard0 = RunLease(store, "run-a", "run-a", ttl=30)
    shard1 = RunLease(store, "run-a", "run-a", ttl=30)
    shard0.acquire()
    shard1.acquire()  # same run: joins instead of waiting
    assert shard0.epoch == shard1.epoch
    shard0.stop_heartbeat()
    shard1.stop_heartbeat()
    with pytest.raises(StoreBusy):
        RunLease(store, "run-b", "run-b", ttl=30).acquire()
    release_if_held(store, "run-a")  # what the commit does
    RunLease(store, "run-b", "run-b", ttl=30).acquire()


def test_a_dead_holders_lease_expires_and_a_waiter_takes_over(store: Store) -> None:
    dead = RunLease(store, "run-dead", "run-dead", ttl=1.0)
    dead.acquire()
    dead.stop_heartbeat()  # the holder was killed: nobody renews
    started = time.monotonic()
    waiter = RunLease(store, "run-next", "run-next", ttl=30)
    waiter.acquire(wait=10)
    assert 0.3 < time.monotonic() - started < 8
    assert waiter.current().holder == "run-next"
    waiter.release()


def test_the_heartbeat_keeps_a_live_holder_from_expiring(store: Store) -> None:
    holder = RunLease(store, "run-a", "run-a", ttl=0.9)
    holder.acquire()
    try:
        time.sleep(2.0)  # more than twice the ttl: only renewals keep it
        with pytest.raises(StoreBusy):
            RunLease(store, "run-b", "run-b", ttl=30).acquire()
        assert not holder.lost
    finally:
        holder.release()


def test_racing_runs_get_one_winner(store: Store) -> None:
    winners: list[str] = []
    busy: list[str] = []
    barrier = threading.Barrier(4)

    def contend(name: str) -> None:
        lease = RunLease(store, name, name, ttl=30)
        barrier.wait()
        try:
            lease.acquire()
            winners.append(name)
            lease.stop_heartbeat()
        except StoreBusy:
            busy.append(name)

    threads = [threading.Thread(target=contend, args=(f"run-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(busy) == 3


def test_an_unreadable_lease_record_does_not_block_the_store(store: Store) -> None:
    store.put_bytes(f"{LEASES}{7:012d}.json", b'{"epoch": 7, "hold')
    lease = RunLease(store, "run-a", "run-a", ttl=30)
    lease.acquire()
    assert lease.epoch == 8
    lease.release()
