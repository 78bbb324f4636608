"""The receiver: the HTTP service publishers' hubs call (`ingest receive`).

An ASGI app on uvicorn, three routes:

* `GET /websub/<id>`: intent verification. The challenge is echoed only for a request
  we made and have not seen confirmed (mode and topic must match); anything else is 404.
  `hub.mode=denied` is recorded.
* `POST /websub/<id>`: content distribution. Accepted only for a verified subscription
  with a live lease, with a valid `X-Hub-Signature` (HMAC of the body with the
  subscription's secret), within MAX_BODY bytes and BODY_SECONDS; the notification is in
  the inbox (ingest.websub.inbox) before the 202 goes out, then the doorbell rings.
* `GET /healthz` (the store answers), `GET /metrics` (Prometheus text).

It fetches nothing: the run that drains the inbox fetches pages through the guarded client.
Slow clients are cut: request headers must arrive within HEADER_SECONDS (uvicorn has no
such limit of its own), the body within BODY_SECONDS; at most MAX_CONNECTIONS at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from ingest.store import Store
from ingest.websub.doorbell import Doorbell, NoDoorbell
from ingest.websub.inbox import Inbox, Notification
from ingest.websub.subscriptions import (
    CALLBACK_PATH,
    SubscriptionStore,
    Verification,
    is_subscription_id,
)

log = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024  # a feed document; larger notifications are refused (413)
BODY_SECONDS = 15.0
HEADER_SECONDS = 10.0
MAX_CONNECTIONS = 64
MAX_LEASE_SECONDS = 366 * 24 * 3600
# HMAC algorithms of X-Hub-Signature. sha1 is accepted: HMAC-SHA1 is not broken as a MAC,
# and widely deployed hubs sign with nothing else.
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
              "sha512": hashlib.sha512}  # fmt: skip

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def signature_ok(header: str | None, secret: str, body: bytes) -> bool:
    if not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    algorithm = ALGORITHMS.get(method.strip().lower())
    if algorithm is None:
        return False
    expected = hmac.new(secret.encode(), body, algorithm).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


class Receiver:
    def __init__(
        self,
        store: Store,
        doorbell: Doorbell | None = None,
        max_body: int = MAX_BODY,
        body_seconds: float = BODY_SECONDS,
    ) -> None:
        self.store = store
        self.subscriptions = SubscriptionStore(store)
        self.inbox = Inbox(store)
        self.doorbell = doorbell or NoDoorbell()
        self.max_body = max_body
        self.body_seconds = body_seconds
        self.registry = CollectorRegistry()
        self.notifications = Counter(
            "newsflow_websub_notifications",
            "Content distribution requests by outcome (accepted or why refused)",
            ["outcome"],
            registry=self.registry,
        )
        self.verifications = Counter(
            "newsflow_websub_verifications",
            "Intent verification requests by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.depth = Gauge(
            "newsflow_inbox_depth", "Notifications waiting in the inbox", registry=self.registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path == "/healthz" and method in ("GET", "HEAD"):
                await asyncio.to_thread(self.store.exists, "_websub/healthz")
                await _respond(send, 200, b"ok\n")
            elif path == "/metrics" and method == "GET":
                self.depth.set(await asyncio.to_thread(self.inbox.depth))
                text = generate_latest(self.registry)
                await _respond(send, 200, text, "text/plain; version=0.0.4")
            elif path.startswith(CALLBACK_PATH) and method == "GET":
                status, body = await asyncio.to_thread(
                    self.verify, path[len(CALLBACK_PATH) :], _query(scope)
                )
                await _respond(send, status, body)
            elif path.startswith(CALLBACK_PATH) and method == "POST":
                await self._distribution(scope, receive, send, path[len(CALLBACK_PATH) :])
            elif path.startswith(CALLBACK_PATH) or path in ("/healthz", "/metrics"):
                await _respond(send, 405, b"method not allowed\n")
            else:
                await _respond(send, 404, b"not found\n")
        except _Refused as exc:
            self.notifications.labels(exc.reason).inc()
            log.info("notification refused (%s): %s", exc.reason, exc.message)
            await _respond(send, exc.status, exc.message.encode() + b"\n")
        except Exception:
            log.exception("receiver error on %s %s", method, path)
            await _respond(send, 503, b"store unavailable, try again\n")

    # ------------------------------------------------------------------ verification

    def verify(self, sid: str, query: dict[str, str]) -> tuple[int, bytes]:
        """Intent verification (WebSub 5.3): (status, body)."""
        mode, topic = query.get("hub.mode", ""), query.get("hub.topic", "")
        sub = self.subscriptions.get(sid) if is_subscription_id(sid) else None
        if sub is None or not topic or topic != sub.topic:
            self.verifications.labels("unknown").inc()
            return 404, b"no such subscription\n"
        now = datetime.now(UTC).isoformat()
        if mode == "denied":
            reason = query.get("hub.reason", "")[:500] or None
            self.subscriptions.record(sid, Verification("denied", topic, now, reason=reason))
            self.verifications.labels("denied").inc()
            log.warning("hub denied the subscription to %s: %s", topic, reason)
            return 200, b""
        challenge = query.get("hub.challenge", "")
        if mode not in ("subscribe", "unsubscribe") or not challenge:
            self.verifications.labels("malformed").inc()
            return 400, b"hub.mode and hub.challenge are required\n"
        done = self.subscriptions.verification(sid)
        pending = done is None or done.at < sub.requested_at
        if mode != sub.mode or not pending:
            self.verifications.labels("not_pending").inc()
            return 404, b"no such pending request\n"
        lease = None
        if mode == "subscribe":
            raw = query.get("hub.lease_seconds", "")
            lease = int(raw) if raw.isdigit() else sub.lease_seconds
            lease = max(1, min(lease, MAX_LEASE_SECONDS))
        self.subscriptions.record(sid, Verification(mode, topic, now, lease_seconds=lease))
        self.verifications.labels(mode).inc()
        log.info("websub: %s to %s verified (lease %s s)", mode, topic, lease)
        return 200, challenge.encode()

    # ------------------------------------------------------------------ distribution

    async def _distribution(self, scope: Scope, receive: Receive, send: Send, sid: str) -> None:
        now = datetime.now(UTC)
        status = (
            await asyncio.to_thread(self.subscriptions.status, sid)
            if is_subscription_id(sid)
            else None
        )
        if status is None or not status.accepts_content(now):
            raise _Refused(410, "unknown_subscription", "no live subscription at this URL")
        headers = _headers(scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise _Refused(413, "too_large", f"body over {self.max_body} bytes")
        body = await self._read_body(receive)
        sub = status.subscription
        if not signature_ok(headers.get("x-hub-signature"), sub.secret, body):
            raise _Refused(403, "bad_signature", "missing or wrong X-Hub-Signature")
        note = Notification(
            subscription=sub.id,
            source=sub.source,
            topic=sub.topic,
            received_at=now.isoformat(),
            content_type=headers.get("content-type", "")[:200],
            body=body,
        )
        if not await asyncio.to_thread(self.inbox.put, note):
            raise _Refused(409, "replayed", "this notification was already received")
        self.notifications.labels("accepted").inc()
        await asyncio.to_thread(
            self.doorbell.ring, {"source": sub.source, "key": note.key, "at": note.received_at}
        )
        await _respond(send, 202, b"accepted\n")

    async def _read_body(self, receive: Receive) -> bytes:
        deadline = time.monotonic() + self.body_seconds
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), max(left, 0.001))
            except TimeoutError:
                raise _Refused(408, "too_slow", "body not received in time") from None
            if message["type"] == "http.disconnect":
                raise _Refused(400, "disconnected", "client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _Refused(413, "too_large", f"body over {self.max_body} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    try:
        parsed = parse_qs(raw, max_num_fields=20)
    except ValueError:
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


async def _respond(send: Send, status: int, body: bytes, ctype: str = "text/plain") -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype.encode()), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
