"""The WebSub receiver on a loopback port in a thread: the real uvicorn server and app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from ingest.store import Store
from ingest.websub.doorbell import Doorbell
from ingest.websub.receiver import Receiver
from ingest.websub.serve import GuardedH11Protocol


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_receiver(
    store: Store,
    doorbell: Doorbell | None = None,
    protocol: type[GuardedH11Protocol] = GuardedH11Protocol,
    **options: float,
) -> Iterator[tuple[str, Receiver]]:
    """(base URL, app) of a receiver serving `store` until the block ends."""
    app = Receiver(store, doorbell, **options)  # type: ignore[arg-type]
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=protocol, lifespan="off",
        limit_concurrency=64, log_config=None, access_log=False,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)
