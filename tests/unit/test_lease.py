"""The lease's liveness check: a live, a dead, a zombie and a reused PID told apart."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ingest.lease import process_alive, process_start_time


def test_process_alive_tells_a_live_a_dead_and_a_reused_pid_apart() -> None:
    me = os.getpid()
    assert process_alive(me, process_start_time(me))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = process_start_time(child.pid)
        assert started is not None and started != process_start_time(me)
        assert process_alive(child.pid, started)
        # the same PID with another start time: the holder died and the PID was reused
        assert not process_alive(child.pid, process_start_time(me))
        assert process_alive(child.pid, None)  # no start time recorded: the PID decides
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid, started)  # dead (and reaped)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    zombie_started = process_start_time(zombie.pid)
    time.sleep(1.0)  # exited, not yet reaped: a zombie holds nothing
    try:
        assert not process_alive(zombie.pid, zombie_started)
    finally:
        zombie.wait()
    assert not process_alive(0, None) and not process_alive(-1, None)


def test_a_heartbeat_interrupted_while_starting_stops_without_an_error(tmp_path) -> None:
    """SIGTERM can land inside Thread.start(), before the heartbeat reports that it runs;
    releasing the lease then must not fail on joining a thread that never started."""
    import threading

    from ingest.lease import RunLease
    from ingest.store import LocalStore

    lease = RunLease(LocalStore(tmp_path), "holder", "run-1")
    lease._heartbeat = threading.Thread(target=lease._beat, daemon=True)  # never started
    lease.release()
    assert lease._heartbeat is None
