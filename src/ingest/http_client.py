"""The one HTTP client: SSRF guard, limits, retries, politeness, robots.txt, charsets.

Named http_client (not http) so it never shadows the standard library's `http`.

Security lives in the connection itself: every connection, including each redirect
hop, resolves the host once, checks every resolved address and connects to the checked
address, so DNS rebinding cannot slip a private address in between check and use.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from protego import Protego
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import Retry, Timeout
from w3lib.encoding import html_to_unicode

from ingest.config import Settings

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata endpoints: refused even when their range is explicitly allowed.
ALWAYS_BLOCKED: tuple[IPAddress, ...] = (
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
)

HTML_TYPES = ("text/html", "application/xhtml+xml")


class FetchError(Exception):
    """A fetch that did not produce a usable body; `reason` is a short stable code."""

    def __init__(
        self, reason: str, detail: str, *, status: int | None = None, transient: bool = False
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries (feed parsing)
        return (_rebuild_fetch_error, (self.reason, self.detail, self.status, self.transient))


def _rebuild_fetch_error(
    reason: str, detail: str, status: int | None, transient: bool
) -> FetchError:
    return FetchError(reason, detail, status=status, transient=transient)


class BlockedAddress(FetchError):
    def __init__(self, detail: str) -> None:
        super().__init__("blocked_address", detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (BlockedAddress, (self.detail,))


def effective_address(addr: IPAddress) -> IPAddress:
    """Unwrap IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64 well-known)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
        if addr in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    return addr


def address_refusal(addr: IPAddress, allowed: Iterable[IPNetwork]) -> str | None:
    """Why this address may not be contacted, or None when it may."""
    addr = effective_address(addr)
    if addr in ALWAYS_BLOCKED:
        return f"{addr} is a cloud metadata address"
    if any(addr.version == net.version and addr in net for net in allowed):
        return None
    if not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_unspecified:
        return f"{addr} is not a public address (allow it with --allow-network)"
    return None


@dataclass
class Response:
    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    redirects: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def text(self) -> str:
        """Decode with the charset from HTTP header, BOM or meta; detect when none is given."""
        return decode_html(self.body, self.headers.get("content-type", ""))


def decode_html(body: bytes, content_type: str) -> str:
    _, text = html_to_unicode(content_type or None, body, auto_detect_fun=_detect_encoding)
    return text


def _detect_encoding(body: bytes) -> str | None:
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    return best.encoding if best else None


def _guarded_connection(base: type[HTTPConnection], allowed: tuple[IPNetwork, ...]) -> type:
    class Guarded(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            host = self._dns_host.strip("[]")
            try:
                infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise FetchError(
                    "dns_error", f"cannot resolve {host}: {exc}", transient=True
                ) from None
            refusals = []
            last: OSError | None = None
            for family, socktype, proto, _, sockaddr in infos:
                addr = ipaddress.ip_address(sockaddr[0].split("%")[0])
                why = address_refusal(addr, allowed)
                if why:
                    refusals.append(why)
                    continue
                sock = socket.socket(family, socktype, proto)
                try:
                    for opt in self.socket_options or ():
                        sock.setsockopt(*opt)
                    if self.timeout is not None:
                        sock.settimeout(self.timeout)
                    sock.connect(sockaddr)
                    return sock
                except OSError as exc:
                    sock.close()
                    last = exc
            if refusals and last is None:
                raise BlockedAddress(f"{host}: {refusals[0]}")
            raise urllib3.exceptions.NewConnectionError(self, f"cannot connect to {host}: {last}")

    return Guarded


class RobotsCache:
    """robots.txt per origin, fetched once through the guarded client (RFC 9309 rules)."""

    def __init__(self, client: HttpClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._rules: dict[str, Protego | BlockedAddress | None] = {}
        self._pending: dict[str, threading.Event] = {}

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            done = origin in self._rules
            event = self._pending.get(origin)
            if not done and event is None:
                event = self._pending[origin] = threading.Event()
                fetch = True
            else:
                fetch = False
        if fetch:
            rules = self._load(origin)
            with self._lock:
                self._rules[origin] = rules
                self._pending.pop(origin).set()
        elif not done and event is not None:
            event.wait(self._client.settings.total_timeout + 5)
        rules = self._rules.get(origin)
        if isinstance(rules, BlockedAddress):  # the page itself would be refused the same way
            raise rules
        if rules is None:  # unreachable robots.txt: RFC 9309 says assume complete disallow
            return False
        return rules.can_fetch(url, self._client.settings.user_agent)

    def _load(self, origin: str) -> Protego | BlockedAddress | None:
        try:
            resp = self._client.get(
                origin + "/robots.txt", accept=None, max_bytes=512 * 1024, check_robots=False
            )
        except BlockedAddress as exc:
            return exc
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                return Protego.parse("")  # no robots.txt: everything allowed
            log.warning("robots.txt unavailable for %s (%s): not fetching there", origin, exc)
            return None
        return Protego.parse(resp.body.decode("utf-8", errors="replace"))


class HttpClient:
    """Thread-safe; one per run. Politeness state (per-host slots, delays) lives here."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        retries = Retry(
            total=settings.http_retries,
            connect=settings.http_retries,
            read=settings.http_retries,
            status=settings.http_retries,
            redirect=False,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"GET"}),
            backoff_factor=0.5,
            backoff_max=5.0,
            raise_on_status=False,
            respect_retry_after_header=False,  # a hostile Retry-After must not stall a run
        )
        self._pool = urllib3.PoolManager(
            num_pools=256,
            maxsize=settings.per_host_concurrency,
            block=False,
            retries=retries,
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        )
        allowed = settings.allow_networks
        self._pool.pool_classes_by_scheme = {
            "http": type(
                "GuardedHTTPPool",
                (HTTPConnectionPool,),
                {"ConnectionCls": _guarded_connection(HTTPConnection, allowed)},
            ),
            "https": type(
                "GuardedHTTPSPool",
                (HTTPSConnectionPool,),
                {"ConnectionCls": _guarded_connection(HTTPSConnection, allowed)},
            ),
        }
        self._host_lock = threading.Lock()
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        self._host_next: dict[str, float] = {}
        self.robots = RobotsCache(self)
        self.bytes_received = 0
        self._bytes_lock = threading.Lock()

    def close(self) -> None:
        self._pool.clear()

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        with self._host_lock:
            slot = self._host_slots.get(host)
            if slot is None:
                slot = self._host_slots[host] = threading.BoundedSemaphore(
                    self.settings.per_host_concurrency
                )
            return slot

    def _wait_turn(self, host: str) -> None:
        delay = self.settings.per_host_delay
        if delay <= 0:
            return
        with self._host_lock:
            now = time.monotonic()
            start = max(now, self._host_next.get(host, now))
            self._host_next[host] = start + delay
        if start > now:
            time.sleep(start - now)

    def get(
        self,
        url: str,
        *,
        accept: tuple[str, ...] | None = HTML_TYPES,
        headers: dict[str, str] | None = None,
        max_bytes: int | None = None,
        check_robots: bool = False,
    ) -> Response:
        """GET with redirects followed hop by hop; raises FetchError on anything unusable.

        A 304 is returned (not raised) so conditional GET callers can act on it.
        """
        settings = self.settings
        limit = max_bytes or settings.max_bytes
        started = time.monotonic()
        deadline = started + settings.total_timeout
        redirects: list[str] = []
        current = url
        while True:
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FetchError("bad_url", f"not an http(s) URL: {current!r}")
            if check_robots and settings.respect_robots and not self.robots.allowed(current):
                raise FetchError("robots_disallowed", f"robots.txt disallows {current}")
            host = parts.netloc.lower()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError(
                    "timeout",
                    f"total deadline of {settings.total_timeout}s exceeded",
                    transient=True,
                )
            timeout = Timeout(
                connect=min(settings.connect_timeout, remaining),
                read=min(settings.read_timeout, remaining),
            )
            with self._slot(host):
                self._wait_turn(host)
                resp = self._request(current, headers, timeout)
                complete = False
                try:
                    status = resp.status
                    if status in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                        if len(redirects) >= settings.max_redirects:
                            raise FetchError(
                                "too_many_redirects",
                                f"more than {settings.max_redirects} redirects from {url}",
                                status=status,
                            )
                        redirects.append(current)
                        current = urljoin(current, resp.headers["location"].strip())
                        continue
                    hdrs = {k.lower(): v for k, v in resp.headers.items()}
                    if status == 304:
                        complete = True
                        return Response(
                            url, current, status, hdrs, b"", redirects, time.monotonic() - started
                        )
                    if status >= 400:
                        raise FetchError(
                            f"http_{status}",
                            f"{current} answered {status}",
                            status=status,
                            transient=status in (408, 425, 429) or status >= 500,
                        )
                    if status != 200:
                        raise FetchError(
                            f"http_{status}", f"{current} answered {status}", status=status
                        )
                    ctype = hdrs.get("content-type", "").split(";")[0].strip().lower()
                    if accept is not None and ctype and not _type_ok(ctype, accept):
                        raise FetchError(
                            "bad_content_type",
                            f"{current} is {ctype}, expected {accept}",
                            status=status,
                        )
                    body = self._read_body(resp, limit, deadline, current)
                    complete = True
                finally:
                    if not complete:  # unread bytes: this connection must not be reused
                        resp.close()
                    resp.release_conn()
            with self._bytes_lock:
                self.bytes_received += len(body)
            return Response(url, current, status, hdrs, body, redirects, time.monotonic() - started)

    def _request(
        self, url: str, headers: dict[str, str] | None, timeout: Timeout
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                "GET",
                url,
                headers=headers,
                timeout=timeout,
                redirect=False,
                preload_content=False,
                decode_content=True,
            )
        except FetchError:
            raise
        except urllib3.exceptions.MaxRetryError as exc:
            reason = exc.reason
            # NewConnectionError subclasses ConnectTimeoutError: test it first.
            if isinstance(reason, urllib3.exceptions.NewConnectionError):
                raise FetchError("connection_error", f"{url}: {reason}", transient=True) from None
            if isinstance(reason, urllib3.exceptions.TimeoutError | socket.timeout):
                raise FetchError("timeout", f"{url}: {reason}", transient=True) from None
            raise FetchError("connection_error", f"{url}: {reason}", transient=True) from None
        except urllib3.exceptions.TimeoutError as exc:
            raise FetchError("timeout", f"{url}: {exc}", transient=True) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError("connection_error", f"{url}: {exc}", transient=True) from None

    def _read_body(
        self, resp: urllib3.BaseHTTPResponse, limit: int, deadline: float, url: str
    ) -> bytes:
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError("too_large", f"{url} declares {declared} bytes, limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        try:
            # read1: return what one socket read brings, so a trickling server cannot
            # hold us past the deadline while a large read fills up.
            for chunk in iter(lambda: resp.read1(64 * 1024), b""):
                size += len(chunk)
                if size > limit:
                    raise FetchError("too_large", f"{url} exceeds {limit} bytes (decoded)")
                if time.monotonic() > deadline:
                    raise FetchError(
                        "timeout",
                        f"{url}: body not complete within {self.settings.total_timeout}s",
                        transient=True,
                    )
                chunks.append(chunk)
        except FetchError:
            raise
        except urllib3.exceptions.TimeoutError as exc:
            raise FetchError("timeout", f"{url}: {exc}", transient=True) from None
        except urllib3.exceptions.DecodeError as exc:
            raise FetchError("decode_error", f"{url}: bad content encoding: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise FetchError("connection_error", f"{url}: {exc}", transient=True) from None
        return b"".join(chunks)


def _type_ok(ctype: str, accept: tuple[str, ...]) -> bool:
    for pattern in accept:
        if pattern.endswith("/*") and ctype.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*") and ctype.endswith(pattern[1:]):
            return True
        if ctype == pattern:
            return True
    return False
