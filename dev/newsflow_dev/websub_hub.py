"""A WebSub hub on loopback, for tests and benchmarks only: it follows the W3C WebSub
Recommendation's hub side closely enough to exercise a subscriber for real.

* `POST /hub` (form): `hub.mode` subscribe/unsubscribe, `hub.topic`, `hub.callback`,
  `hub.secret`, `hub.lease_seconds`. Answers 202, then verifies intent in the background:
  a GET to the callback with a random `hub.challenge`; the subscription is active only
  when the callback answers 2xx with exactly the challenge.
* `publish(topic, body)`: content distribution to every active, unexpired subscriber of
  the topic: a POST of the body with `X-Hub-Signature: sha256=<HMAC>` and Link headers
  (rel=hub, rel=self). Returns each callback's status.
* `deny(...)`, `expire(...)`, and `verify(...)` for a request the subscriber never made.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

from newsflow_dev.loopback import FixtureServer, Route, article_html, paragraphs


@dataclass
class HubSubscription:
    topic: str
    callback: str
    secret: str | None
    lease_seconds: int
    expires_at: float
    verified: bool = False


@dataclass
class LocalHub:
    server: FixtureServer = field(default_factory=lambda: FixtureServer("127.0.0.9"))
    default_lease: int = 3600
    algorithm: str = "sha256"
    subscriptions: dict[tuple[str, str], HubSubscription] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)  # every form received
    verifications: list[tuple[str, int, bool]] = field(default_factory=list)  # url, status, ok
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url("/hub")

    @contextmanager
    def running(self) -> Iterator[LocalHub]:
        self.server.add("/hub", self._handle)
        with self.server.running():
            yield self
            self.settle()

    def settle(self, timeout: float = 10.0) -> None:
        """Wait for the background verifications started so far."""
        for thread in list(self._threads):
            thread.join(timeout)

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(req.rfile.read(length).decode()))
        with self._lock:
            self.requests.append(form)
        mode, topic, callback = (form.get(f"hub.{k}") for k in ("mode", "topic", "callback"))
        if mode not in ("subscribe", "unsubscribe") or not topic or not callback:
            _answer(req, 400, b"hub.mode, hub.topic and hub.callback are required")
            return
        lease = int(form.get("hub.lease_seconds") or self.default_lease)
        lease = min(lease, self.default_lease)
        thread = threading.Thread(
            target=self._verify_request,
            args=(mode, topic, callback, form.get("hub.secret"), lease),
            daemon=True,
        )
        thread.start()  # before the 202: `settle` then waits for it (the spec allows either)
        self._threads.append(thread)
        _answer(req, 202, b"")

    def _verify_request(
        self, mode: str, topic: str, callback: str, secret: str | None, lease: int
    ) -> None:
        ok = self.verify(callback, mode, topic, lease)
        with self._lock:
            key = (topic, callback)
            if ok and mode == "subscribe":
                self.subscriptions[key] = HubSubscription(
                    topic, callback, secret, lease, time.time() + lease, verified=True
                )
            elif ok and mode == "unsubscribe":
                self.subscriptions.pop(key, None)

    def verify(self, callback: str, mode: str, topic: str, lease: int | None = None) -> bool:
        """A verification-of-intent GET; True when the callback echoed the challenge."""
        challenge = secrets.token_urlsafe(16)
        query = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        if lease is not None:
            query["hub.lease_seconds"] = str(lease)
        url = callback + ("&" if "?" in callback else "?") + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                status, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, b""
        except OSError:
            status, body = 0, b""
        ok = 200 <= status < 300 and body.decode(errors="replace") == challenge
        with self._lock:
            self.verifications.append((url, status, ok))
        return ok

    def deny(self, callback: str, topic: str, reason: str = "not allowed") -> int:
        query = urllib.parse.urlencode(
            {"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason}
        )
        with self._lock:
            self.subscriptions.pop((topic, callback), None)
        return _get(f"{callback}?{query}")

    def active(self, topic: str | None = None) -> list[HubSubscription]:
        now = time.time()
        with self._lock:
            return [
                s
                for s in self.subscriptions.values()
                if s.verified and s.expires_at > now and (topic is None or s.topic == topic)
            ]

    def expire(self, topic: str) -> None:
        """Let the leases of a topic run out now."""
        with self._lock:
            for sub in self.subscriptions.values():
                if sub.topic == topic:
                    sub.expires_at = time.time() - 1

    def publish(
        self, topic: str, body: bytes, content_type: str = "application/rss+xml"
    ) -> list[int]:
        """Distribute a (fat) notification to the topic's subscribers: their statuses."""
        return [
            self.deliver(sub.callback, body, sub.secret, topic, content_type)
            for sub in self.active(topic)
        ]

    def deliver(
        self,
        callback: str,
        body: bytes,
        secret: str | None,
        topic: str,
        content_type: str = "application/rss+xml",
        signature: str | None = None,
    ) -> int:
        headers = {
            "Content-Type": content_type,
            "Link": f'<{self.url}>; rel="hub", <{topic}>; rel="self"',
        }
        if signature is None and secret:
            digest = hmac.new(secret.encode(), body, getattr(hashlib, self.algorithm))
            signature = f"{self.algorithm}={digest.hexdigest()}"
        if signature:
            headers["X-Hub-Signature"] = signature
        request = urllib.request.Request(callback, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return 0  # the subscriber is down: a real hub would retry later


def _answer(req: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    req.send_response(status)
    req.send_header("Content-Type", "text/plain")
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class Site:
    """A publisher whose RSS feed announces the hub (atom:link rel=hub and rel=self);
    `hub=None`: a publisher without one. Each story is dated when it is added."""

    srv: FixtureServer
    hub: LocalHub | None
    stories: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.srv.url("/feed.xml")

    def add_story(self, n: int) -> str:
        path = f"/news/story-{n}"
        html = article_html(f"Story number {n}", paragraphs(120 + n))
        self.srv.add(path, Route(html.encode()))
        self.stories.append((path, datetime.now(UTC).replace(microsecond=0)))
        self.srv.add("/feed.xml", Route(self.feed(), content_type="application/rss+xml"))
        return self.srv.url(path)

    def feed(self) -> bytes:
        """The same bytes until a story is added (a hub's repeat is a replay)."""
        items = "".join(
            f"<item><title>Story {path}</title><link>{self.srv.url(path)}</link>"
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate></item>"
            for path, when in reversed(self.stories)
        )
        hub = f'<atom:link rel="hub" href="{self.hub.url}"/>' if self.hub else ""
        return (
            '<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">'
            f"<channel><title>Pub</title><link>{self.srv.url('/')}</link>{hub}"
            f'<atom:link rel="self" href="{self.topic}"/>{items}</channel></rss>'
        ).encode()
