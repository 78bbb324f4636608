"""The WebSub receiver on a loopback port in a thread: the real uvicorn server and app."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import uvicorn

from ingest.store import Store
from ingest.websub.doorbell import Doorbell
from ingest.websub.receiver import Receiver
from ingest.websub.serve import GuardedH11Protocol
from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs
from newsflow_dev.websub_hub import LocalHub


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


@dataclass
class Site:
    """A publisher whose RSS feed announces the hub (atom:link rel=hub and rel=self)."""

    srv: FixtureServer
    hub: LocalHub
    stories: list[str] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    @property
    def topic(self) -> str:
        return self.srv.url("/feed.xml")

    def add_story(self, n: int) -> str:
        path = f"/news/story-{n}"
        html = article_html(f"Story number {n}", paragraphs(120 + n))
        self.srv.add(path, Route(html.encode()))
        self.stories.append(path)
        self.srv.add("/feed.xml", Route(self.feed(), content_type="application/rss+xml"))
        return self.srv.url(path)

    def feed(self) -> bytes:
        """The same bytes until a story is added (a hub's repeat is a replay)."""
        now = self.now
        items = "".join(
            f"<item><title>Story {i}</title><link>{self.srv.url(p)}</link>"
            f"<pubDate>{format_datetime(now - timedelta(minutes=i), usegmt=True)}</pubDate></item>"
            for i, p in enumerate(reversed(self.stories))
        )
        return (
            '<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>Pub</title><link>{self.srv.url('/')}</link>"
            f'<atom:link rel="hub" href="{self.hub.url}"/>'
            f'<atom:link rel="self" href="{self.topic}"/>{items}</channel></rss>'
        ).encode()
