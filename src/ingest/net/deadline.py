"""The time budget of one fetch, and the watchdog that ends it on time.

Every fetch has one `Deadline` that covers name resolution, connect, headers, body,
redirects, retries and backoff. A watchdog thread shuts the socket down when it runs out,
so a server that trickles bytes cannot stretch it. The clock runs only while the fetch
holds a per-host slot: waiting behind other pages is not fetching.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress


class Deadline:
    """The time budget of one fetch. It runs only while resumed (while the fetch holds a
    host slot) and, once spent, shuts down every socket attached to it: a blocked read
    returns at once, however the server paces its bytes."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.expired = False
        self._lock = threading.Lock()
        self._spent = 0.0
        self._since: float | None = None  # monotonic start of the running stretch
        self._sockets: set[socket.socket] = set()

    def remaining(self) -> float:
        with self._lock:
            return self._remaining(time.monotonic())

    def _remaining(self, now: float) -> float:
        running = now - self._since if self._since is not None else 0.0
        return self.budget - self._spent - running

    def ends_at(self) -> float | None:
        """Monotonic time at which the budget runs out, or None while paused."""
        with self._lock:
            if self._since is None or self.expired:
                return None
            return self._since + self.budget - self._spent

    def resume(self) -> None:
        with self._lock:
            if self._since is None:
                self._since = time.monotonic()

    def pause(self) -> None:
        with self._lock:
            if self._since is not None:
                self._spent += time.monotonic() - self._since
                self._since = None

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                _shutdown(sock)
            self._sockets.add(sock)

    def release(self) -> None:
        """The fetch is over: its sockets go back to the pool untouched."""
        with self._lock:
            self._sockets.clear()
            if self._since is not None:
                self._spent += time.monotonic() - self._since
                self._since = None

    def expire_now(self) -> None:
        """The run is stopping: end the fetch as if its budget were spent."""
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def expire_if_due(self, now: float) -> bool:
        with self._lock:
            if self.expired or self._since is None or self._remaining(now) > 0:
                return False
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)
            return True


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):  # already closed or never connected
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One thread per client that expires the deadlines of running fetches on time."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadlines: set[Deadline] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def track(self, deadline: Deadline) -> None:
        with self._cond:
            self._deadlines.add(deadline)
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._loop, name="fetch-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def expire_all(self) -> None:
        with self._cond:
            for deadline in self._deadlines:
                deadline.expire_now()

    def untrack(self, deadline: Deadline) -> None:
        with self._cond:
            self._deadlines.discard(deadline)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                ends = []
                for deadline in list(self._deadlines):
                    if deadline.expire_if_due(now):
                        self._deadlines.discard(deadline)
                    elif (end := deadline.ends_at()) is not None:
                        ends.append(end)
                wait = min(ends, default=now + 1.0) - now
                self._cond.wait(timeout=min(max(wait, 0.005), 1.0))


# The deadline of the fetch running on this thread, found by the connections it opens.
fetch_context = threading.local()


@contextmanager
def running(deadline: Deadline) -> Iterator[None]:
    """Bind the deadline to this thread; a nested fetch (robots.txt) restores the outer one."""
    outer = getattr(fetch_context, "deadline", None)
    fetch_context.deadline = deadline
    try:
        yield
    finally:
        fetch_context.deadline = outer
