"""The run lease on both stores: one run at a time, shards share it, dead holders expire."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.lease import (
    LEASES,
    RunLease,
    StoreBusy,
    release_if_held,
)
from ingest.store import Store
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs, rss, slow_page


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


# ------------------------------------------------------------------ a killed holder on this host

SRC = str(Path(__file__).parents[2] / "src")


def cli_env(**extra: str) -> dict[str, str]:
    """This checkout's engine for `ingest` subprocesses (S3 variables come from os.environ)."""
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
    return env


def newest_lease(store: Store) -> tuple[str, dict]:
    key = sorted(store.list(LEASES))[-1]
    return key, json.loads(store.get_bytes(key))


@pytest.fixture
def slow_feeds(tmp_path: Path) -> Iterator[Path]:
    """A feed of 6 pages that take 0.5 s each: a run that holds the lease for a while."""
    with FixtureServer().running() as srv:
        items = []
        for i in range(6):
            srv.add(
                f"/s/{i}", slow_page(article_html(f"Slow {i}", paragraphs(60 + i)).encode(), 0.5)
            )
            items.append({"title": f"Slow {i}", "link": srv.url(f"/s/{i}")})
        srv.add("/f.xml", Route(rss(items), content_type="application/rss+xml"))
        path = tmp_path / "slow.yaml"
        path.write_text(f"feeds:\n  - name: slow\n    url: {srv.url('/f.xml')}\n")
        yield path


@pytest.mark.timeout(300)
def test_a_killed_runs_lease_is_taken_over_at_once_on_its_host_only(
    store: Store, slow_feeds: Path
) -> None:
    """kill -9 leaves a lease nobody renews; a long TTL must not block this host's next run,
    while the same record from another host or another boot still does (exit 75)."""
    cmd = [sys.executable, "-m", "ingest.cli", "run", "--feeds", str(slow_feeds),
           "--store", store.uri, "--allow-network", "127.0.0.0/8", "--no-progress",
           "--workers", "1"]  # fmt: skip
    env = cli_env(INGEST_LEASE_TTL="600", INGEST_LEASE_WAIT="0")
    killed = subprocess.Popen(cmd, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        give_up = time.monotonic() + 60
        while not list(store.list(LEASES)):
            assert killed.poll() is None and time.monotonic() < give_up, "never took the lease"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    key, record = newest_lease(store)
    assert record["pid"] == killed.pid and record["expires_at"] > time.time() + 500

    for field, foreign in (("host_id", "another-host"), ("boot_id", "another-boot")):
        store.put_bytes(key, json.dumps({**record, field: foreign}).encode())
        busy = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert busy.returncode == 75, (field, busy.stderr)
        assert f"pid {killed.pid}" in busy.stderr and "is busy" in busy.stderr

    store.put_bytes(key, json.dumps(record).encode())  # the dead run's own record again
    started = time.monotonic()
    after = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert after.returncode == 0, after.stderr
    assert time.monotonic() - started < 60  # not the 600 s TTL
    takeover = [line for line in after.stderr.splitlines() if "taking over" in line]
    assert len(takeover) == 1 and "WARNING" in takeover[0], after.stderr
    assert f"pid {killed.pid}" in takeover[0] and "6 written" in after.stdout


def test_an_old_lease_record_without_process_identity_keeps_its_ttl(store: Store) -> None:
    """Records written before host/boot/start time were recorded: nothing to prove the
    holder dead, so the TTL stays the only way out."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    old = {"epoch": 3, "holder": "run-old", "run_id": "run-old", "host": socket.gethostname(),
           "pid": gone.pid, "acquired_at": now, "expires_at": now + 600}  # fmt: skip
    store.put_bytes(f"{LEASES}{3:012d}.json", json.dumps(old).encode())
    with pytest.raises(StoreBusy, match=f"pid {gone.pid}"):
        RunLease(store, "run-new", "run-new", ttl=30).acquire()


def test_a_shards_lease_outlives_the_shard_process(store: Store) -> None:
    """A shard's process ends after staging while the run (other shards, the commit) still
    holds the lease: its exit must not hand the store to another run."""
    script = (
        "import sys; from ingest.lease import RunLease; from ingest.store import open_store\n"
        "lease = RunLease(open_store(sys.argv[1]), 'run-sharded', 'run-sharded', ttl=600)\n"
        "lease.acquire(); lease.stop_heartbeat()\n"
    )
    shard = subprocess.run([sys.executable, "-c", script, store.uri], env=cli_env(), timeout=60)
    assert shard.returncode == 0
    with pytest.raises(StoreBusy):
        RunLease(store, "run-other", "run-other", ttl=30).acquire()
