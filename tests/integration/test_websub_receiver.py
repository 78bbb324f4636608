"""The receiver against hostile and broken callers, over real HTTP (uvicorn on loopback):
each gets a clear 4xx and nothing reaches the inbox."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from ingest.store import LocalStore
from ingest.websub.inbox import Inbox
from ingest.websub.serve import GuardedH11Protocol
from ingest.websub.subscriptions import (
    SubscriptionStore,
    Verification,
    new_subscription,
)
from tests.helpers.websub import running_receiver

TOPIC = "https://news.example/feed.xml"
FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'


class QuickHeaders(GuardedH11Protocol):
    header_seconds = 1.0


@pytest.fixture
def receiver(tmp_path) -> Iterator[tuple[str, LocalStore, object]]:
    store = LocalStore(tmp_path / "lake")
    store.check()
    subs = SubscriptionStore(store)
    sub = new_subscription("pub", TOPIC, "https://hub.example/", datetime.now(UTC))
    subs.save(sub)
    subs.record(sub.id, Verification("subscribe", TOPIC, datetime.now(UTC).isoformat(), 3600))
    with running_receiver(store, protocol=QuickHeaders, max_body=64 * 1024, body_seconds=1.5) as (
        url,
        _app,
    ):
        yield url, store, sub


def request(url: str, method: str, path: str, body: bytes = b"", headers=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    out = resp.status, resp.read()
    conn.close()
    return out


def signed(secret: str, body: bytes, algorithm: str = "sha256") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    return {"X-Hub-Signature": f"{algorithm}={digest}", "Content-Type": "application/rss+xml"}


def inbox_is_empty(store: LocalStore) -> bool:
    return Inbox(store).pending() == []


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha384", "sha512"])
def test_a_signed_notification_is_accepted(receiver, algorithm: str) -> None:
    url, store, sub = receiver
    status, _ = request(url, "POST", f"/websub/{sub.id}", FEED, signed(sub.secret, FEED, algorithm))
    assert status == 202
    [(_, note)] = Inbox(store).pending()
    assert note.body == FEED and note.topic == TOPIC


@pytest.mark.parametrize(
    "headers",
    [
        {},  # unsigned
        {"X-Hub-Signature": "sha256=" + "0" * 64},  # wrong
        {"X-Hub-Signature": "md5=abc"},  # unknown algorithm
        {"X-Hub-Signature": "garbage"},
    ],
)
def test_unsigned_or_wrongly_signed_is_refused(receiver, headers) -> None:
    url, store, sub = receiver
    status, body = request(url, "POST", f"/websub/{sub.id}", FEED, headers)
    assert status == 403 and b"X-Hub-Signature" in body
    assert inbox_is_empty(store)


def test_signed_with_another_secret_is_refused(receiver) -> None:
    url, store, sub = receiver
    status, _ = request(url, "POST", f"/websub/{sub.id}", FEED, signed("other", FEED))
    assert status == 403 and inbox_is_empty(store)


def test_unknown_subscription_is_refused(receiver) -> None:
    url, store, sub = receiver
    for path in ("/websub/" + "ab" * 16, "/websub/../../etc/passwd", "/websub/x"):
        status, _ = request(url, "POST", path, FEED, signed(sub.secret, FEED))
        assert status in (404, 410), path
    assert inbox_is_empty(store)


def test_replayed_notification_is_refused(receiver) -> None:
    url, store, sub = receiver
    headers = signed(sub.secret, FEED)
    assert request(url, "POST", f"/websub/{sub.id}", FEED, headers)[0] == 202
    status, body = request(url, "POST", f"/websub/{sub.id}", FEED, headers)
    assert status == 409 and b"already" in body
    assert len(Inbox(store).pending()) == 1


def test_a_100_mb_body_is_refused_unread(receiver) -> None:
    url, store, sub = receiver
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", f"/websub/{sub.id}")
    conn.putheader("Content-Length", str(100 * 1024 * 1024))
    conn.putheader("X-Hub-Signature", "sha256=" + "0" * 64)
    conn.endheaders()
    conn.send(b"x" * 65536)
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()
    assert inbox_is_empty(store)


def test_a_streamed_body_over_the_limit_is_refused(receiver) -> None:
    url, store, sub = receiver
    big = b"<rss>" + b"x" * (200 * 1024) + b"</rss>"

    def chunks():
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(
            "POST", f"/websub/{sub.id}", body=chunks(), headers=signed(sub.secret, big),
            encode_chunked=True,
        )  # fmt: skip
        status = conn.getresponse().status
    except (ConnectionError, BrokenPipeError):
        status = 413  # the server may close before the client finishes sending
    finally:
        conn.close()
    assert status == 413 and inbox_is_empty(store)


def test_a_slow_loris_client_is_cut_off(receiver) -> None:
    """Headers dripped a line at a time never complete: the connection is closed after the
    header deadline (1 s here), not held for as long as the client keeps dripping."""
    url, store, sub = receiver
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(b"POST /websub/" + sub.id.encode() + b" HTTP/1.1\r\nHost: x\r\n")
    sock.settimeout(0.3)
    started = time.monotonic()
    while time.monotonic() - started < 8:
        try:
            sock.sendall(b"X-Drip: 1\r\n")
            sock.recv(1024)  # b"" (closed) or an answer: either way the server ended it
            break
        except TimeoutError:
            continue
        except OSError:
            break
    held = time.monotonic() - started
    sock.close()
    assert held < 5, f"the connection was held for {held:.1f} s"
    assert inbox_is_empty(store)


def test_a_body_sent_too_slowly_is_refused(receiver) -> None:
    url, store, sub = receiver
    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    head = (
        f"POST /websub/{sub.id} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        "X-Hub-Signature: sha256=00\r\n\r\n"
    )
    sock.sendall(head.encode() + b"<rss>")
    reply = sock.recv(1024)  # the body deadline (1.5 s) passes first
    sock.close()
    assert reply.startswith(b"HTTP/1.1 408") and inbox_is_empty(store)


def test_verification_for_a_subscription_never_requested_is_404(receiver) -> None:
    url, store, sub = receiver
    query = {
        "hub.mode": "subscribe",
        "hub.topic": TOPIC,
        "hub.challenge": "c",
        "hub.lease_seconds": "60",
    }
    status, _ = request(url, "GET", "/websub/" + "cd" * 16 + "?" + urllib.parse.urlencode(query))
    assert status == 404
    # the known subscription, but verified already (nothing pending) or another topic
    status, body = request(url, "GET", f"/websub/{sub.id}?" + urllib.parse.urlencode(query))
    assert status == 404 and body != b"c"
    other = {**query, "hub.topic": "https://evil.example/feed"}
    status, _ = request(url, "GET", f"/websub/{sub.id}?" + urllib.parse.urlencode(other))
    assert status == 404
    assert SubscriptionStore(store).verification(sub.id).lease_seconds == 3600  # unchanged


def test_pending_request_is_verified_with_the_challenge_echoed(tmp_path) -> None:
    store = LocalStore(tmp_path / "lake")
    store.check()
    subs = SubscriptionStore(store)
    sub = new_subscription("pub", TOPIC, "https://hub.example/", datetime.now(UTC))
    subs.save(sub)
    with running_receiver(store) as (url, _app):
        wrong_mode = {"hub.mode": "unsubscribe", "hub.topic": TOPIC, "hub.challenge": "abc"}
        path = f"/websub/{sub.id}?"
        assert request(url, "GET", path + urllib.parse.urlencode(wrong_mode))[0] == 404
        query = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.challenge": "abc",
                 "hub.lease_seconds": "7200"}  # fmt: skip
        assert request(url, "GET", path + urllib.parse.urlencode(query)) == (200, b"abc")
        # not pending any more: a second verification is not confirmed
        assert request(url, "GET", path + urllib.parse.urlencode(query))[0] == 404
        assert request(url, "GET", "/healthz") == (200, b"ok\n")
        status, metrics = request(url, "GET", "/metrics")
        assert (
            status == 200
            and b'newsflow_websub_verifications_total{outcome="subscribe"} 1.0' in metrics
        )
    status = subs.status(sub.id)
    assert status is not None and status.state == "active"
    assert status.verification.lease_seconds == 7200


def test_a_secret_never_reaches_logs_or_reprs(receiver, caplog) -> None:
    url, _store, sub = receiver
    caplog.set_level("DEBUG")
    request(url, "POST", f"/websub/{sub.id}", FEED, signed(sub.secret, FEED))
    request(url, "POST", f"/websub/{sub.id}", FEED, {"X-Hub-Signature": "sha256=00"})
    assert sub.secret not in repr(sub)
    assert sub.secret not in caplog.text
