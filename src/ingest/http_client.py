"""The one HTTP client: SSRF guard, limits, retries, politeness, robots.txt, charsets.

Named http_client (not http) so it never shadows the standard library's `http`.

Security lives in the connection itself: every connection, including each redirect
hop, resolves the host once, checks every resolved address and connects to the checked
address, so DNS rebinding cannot slip a private address in between check and use.

Time lives in one place too: every fetch has one `Deadline` that covers name resolution,
connect, headers, body, redirects, retries and backoff. A watchdog thread shuts the socket
down when it runs out, so a server that trickles bytes cannot stretch it. The clock runs
only while the fetch holds a per-host slot: waiting behind other pages is not fetching.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import urllib3
from protego import Protego
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError, MaxRetryError
from urllib3.util import Retry, Timeout, parse_url
from w3lib.encoding import html_to_unicode

from ingest.config import Settings
from ingest.errors import IngestError
from ingest.polling import retry_after_seconds

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


def request_url(url: str) -> str:
    """The URL as it goes on the wire: urllib3's own normalization of what it requests
    (spaces and other characters a URL may not hold percent-encoded, escapes kept, scheme
    and host lower-cased). Entries, rows and WARC records carry this form, so each names
    exactly what was requested. A URL that does not parse is left for the fetch to refuse."""
    try:
        # a stray '%' becomes '%25' first: urllib3 otherwise re-encodes every escape of
        # that URL part ("/a%zz/%41" would become "/a%25zz/%2541", another page)
        return parse_url(_STRAY_PERCENT.sub("%25", url)).url
    except (LocationParseError, ValueError):
        return url


_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class FetchError(IngestError):
    """A fetch that did not produce a usable body."""

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        status: int | None = None,
        transient: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, detail, transient=transient, status=status)
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503)


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
    ip_address: str | None = None  # of the server that gave the final answer
    # the headers this client sent with the final request (what a WARC request record holds)
    request_headers: dict[str, str] = field(default_factory=dict)

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


class _Watchdog:
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
_current = threading.local()

# Name resolution has no timeout of its own: it runs here so a fetch can stop waiting.
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


def _resolve(host: str, port: int, timeout: float, deadline: Deadline | None) -> list[Any]:
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    ends = time.monotonic() + max(timeout, 0.001)
    try:
        while True:  # in slices, so a fetch cut short (SIGTERM) stops waiting at once
            left = ends - time.monotonic()
            if left <= 0 or (deadline is not None and deadline.expired):
                raise FuturesTimeout
            try:
                return future.result(timeout=min(left, 0.25))
            except FuturesTimeout:
                continue
    except FuturesTimeout:
        raise FetchError(
            "timeout", f"resolving {host} took longer than the fetch deadline", transient=True
        ) from None
    except socket.gaierror as exc:
        raise FetchError("dns_error", f"cannot resolve {host}: {exc}", transient=True) from None


def _guarded_connection(base: type[HTTPConnection], allowed: tuple[IPNetwork, ...]) -> type:
    class Guarded(base):  # type: ignore[misc, valid-type]
        def _new_conn(self) -> socket.socket:
            host = self._dns_host.strip("[]")
            deadline: Deadline | None = getattr(_current, "deadline", None)
            budget = deadline.remaining() if deadline is not None else 30.0
            infos = _resolve(host, self.port, budget, deadline)
            refusals = []
            last: OSError | None = None
            for family, socktype, proto, _, sockaddr in infos:
                addr = ipaddress.ip_address(sockaddr[0].split("%")[0])
                why = address_refusal(addr, allowed)
                if why:
                    refusals.append(why)
                    continue
                sock = socket.socket(family, socktype, proto)
                if deadline is not None:
                    deadline.attach(sock)
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

        def getresponse(self, *args: Any, **kwargs: Any) -> Any:
            # A pooled connection's socket joins this fetch's deadline before we wait on it.
            deadline: Deadline | None = getattr(_current, "deadline", None)
            if deadline is not None and self.sock is not None:
                deadline.attach(self.sock)
            if self.sock is not None:  # the address that answered, for the raw archive
                with contextlib.suppress(OSError):
                    _current.peer = self.sock.getpeername()[0]
            return super().getresponse(*args, **kwargs)

    return Guarded


@contextmanager
def _running(deadline: Deadline) -> Iterator[None]:
    """Bind the deadline to this thread; a nested fetch (robots.txt) restores the outer one."""
    outer = getattr(_current, "deadline", None)
    _current.deadline = deadline
    try:
        yield
    finally:
        _current.deadline = outer


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
        # Retries are ours (see `get`), so they stay inside the fetch's deadline; urllib3's
        # Retry still decides the backoff.
        self._retry = Retry(
            total=settings.http_retries,
            redirect=False,
            backoff_factor=0.5,
            backoff_max=5.0,
            raise_on_status=False,
        )
        self._pool = urllib3.PoolManager(
            num_pools=256,
            maxsize=settings.per_host_concurrency,
            block=False,
            retries=False,
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
        self._host_paused: dict[str, float] = {}  # host -> monotonic end of its Retry-After
        self._watchdog = _Watchdog()
        self.robots = RobotsCache(self)
        self.bytes_received = 0
        self._bytes_lock = threading.Lock()
        self._stopping = threading.Event()

    def abort(self) -> None:
        """Stop every fetch now (SIGTERM): fetches in flight end as transient `aborted`
        errors within moments instead of running to their deadlines, and new ones fail
        before sending anything."""
        self._stopping.set()
        self._watchdog.expire_all()

    def _check_stopping(self, url: str) -> None:
        if self._stopping.is_set():
            raise FetchError("aborted", f"the run is stopping: {url} not fetched", transient=True)

    def close(self) -> None:
        self._watchdog.stop()
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
            self._stopping.wait(start - now)

    def _pause_host(self, host: str, seconds: float) -> None:
        """The host asked for a pause (Retry-After on 429/503): nothing more is sent to it
        until the pause is over, in this run; its pages are retried by the next run."""
        with self._host_lock:
            until = time.monotonic() + seconds
            self._host_paused[host] = max(until, self._host_paused.get(host, 0.0))
        log.warning("%s asked for a pause of %.0fs (Retry-After): not fetching there", host,
                    seconds)  # fmt: skip

    def _check_paused(self, host: str, url: str) -> None:
        with self._host_lock:
            left = self._host_paused.get(host, 0.0) - time.monotonic()
        if left > 0:
            raise FetchError(
                "rate_limited",
                f"{host} asked for a pause (Retry-After), {left:.0f}s left: {url} not fetched",
                transient=True,
                retry_after=left,
            )

    @contextmanager
    def _host_turn(self, host: str, deadline: Deadline) -> Iterator[None]:
        """Hold one of the host's slots; the deadline runs only while it is held."""
        with self._slot(host):
            self._wait_turn(host)
            deadline.resume()
            self._watchdog.wake()
            try:
                yield
            finally:
                deadline.pause()

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
        deadline = Deadline(self.settings.total_timeout)
        self._watchdog.track(deadline)
        if self._stopping.is_set():  # abort() may have swept the deadlines just before
            deadline.expire_now()
        try:
            with _running(deadline):
                return self._fetch(url, accept, headers, max_bytes, check_robots, deadline)
        finally:
            deadline.release()
            self._watchdog.untrack(deadline)

    def _fetch(
        self,
        url: str,
        accept: tuple[str, ...] | None,
        headers: dict[str, str] | None,
        max_bytes: int | None,
        check_robots: bool,
        deadline: Deadline,
    ) -> Response:
        settings = self.settings
        limit = max_bytes or settings.max_bytes
        started = time.monotonic()
        _current.peer = None  # set by the connection that answers
        redirects: list[str] = []
        current = url
        retry = self._retry
        while True:
            self._check_stopping(current)
            host = _checked_host(current)
            self._check_paused(host, current)
            if check_robots and settings.respect_robots and not self.robots.allowed(current):
                raise FetchError("robots_disallowed", f"robots.txt disallows {current}")
            try:
                with self._host_turn(host, deadline):
                    self._check_stopping(current)
                    self._check_paused(host, current)  # a pause may have begun while waiting
                    hop = self._hop(current, headers, accept, limit, deadline)
            except FetchError as exc:
                if exc.retry_after is not None:
                    self._pause_host(host, exc.retry_after)
                if not exc.transient or deadline.expired:
                    raise
                try:
                    retry = retry.increment(method="GET", url=current)
                except MaxRetryError:
                    raise exc from None
                backoff = max(retry.get_backoff_time(), exc.retry_after or 0.0)
                if backoff >= deadline.remaining():
                    raise exc
                log.debug("retrying %s in %.1fs after %s", current, backoff, exc)
                self._stopping.wait(backoff)  # part of the fetch: the deadline counts it
                continue
            status, hdrs, body = hop
            if body is None:  # a redirect
                if len(redirects) >= settings.max_redirects:
                    raise FetchError(
                        "too_many_redirects",
                        f"more than {settings.max_redirects} redirects from {url}",
                        status=status,
                    )
                redirects.append(current)
                current = urljoin(current, hdrs["location"].strip())
                retry = self._retry
                continue
            with self._bytes_lock:
                self.bytes_received += len(body)
            peer = getattr(_current, "peer", None)
            elapsed = time.monotonic() - started
            sent = self._headers_sent(headers)
            return Response(url, current, status, hdrs, body, redirects, elapsed, peer, sent)

    def _hop(
        self,
        url: str,
        headers: dict[str, str] | None,
        accept: tuple[str, ...] | None,
        limit: int,
        deadline: Deadline,
    ) -> tuple[int, dict[str, str], bytes | None]:
        """One request on one host: (status, headers, body), body None for a redirect."""
        remaining = deadline.remaining()
        if remaining <= 0:  # never send a request the fetch has no time left for
            raise self._timeout(deadline, "before sending the request")
        timeout = Timeout(
            connect=min(self.settings.connect_timeout, remaining),
            read=min(self.settings.read_timeout, remaining),
        )
        try:
            resp = self._request(url, headers, timeout)
        except FetchError as exc:
            if deadline.expired:
                raise self._timeout(deadline, "waiting for the response headers") from None
            raise exc
        complete = False
        try:
            status = resp.status
            hdrs = {k.lower(): v for k, v in resp.headers.items()}
            if status in (301, 302, 303, 307, 308) and hdrs.get("location"):
                return status, hdrs, None
            if status == 304:
                complete = True
                return status, hdrs, b""
            if status >= 400:
                retry_after = (
                    retry_after_seconds(hdrs.get("retry-after")) if status in (429, 503) else None
                )
                raise FetchError(
                    f"http_{status}",
                    f"{url} answered {status}"
                    + (f" (Retry-After {retry_after:.0f}s)" if retry_after else ""),
                    status=status,
                    transient=status in (408, 425, 429) or status >= 500,
                    retry_after=retry_after,
                )
            if status != 200:
                raise FetchError(f"http_{status}", f"{url} answered {status}", status=status)
            ctype = hdrs.get("content-type", "").split(";")[0].strip().lower()
            if accept is not None and ctype and not _type_ok(ctype, accept):
                raise FetchError(
                    "bad_content_type", f"{url} is {ctype}, expected {accept}", status=status
                )
            try:
                body = self._read_body(resp, limit, deadline, url)
            except FetchError:
                if deadline.expired:
                    raise self._timeout(deadline, "reading the body") from None
                raise
            complete = not deadline.expired
            return status, hdrs, body
        finally:
            if not complete:  # unread bytes or a shut-down socket: never reuse this one
                resp.close()
            resp.release_conn()

    def _timeout(self, deadline: Deadline, phase: str) -> FetchError:
        return FetchError(
            "timeout",
            f"total deadline of {deadline.budget:g}s exceeded {phase}",
            transient=True,
        )

    def _headers_sent(self, headers: dict[str, str] | None) -> dict[str, str]:
        """Given headers replace the pool's defaults in urllib3: merged, so a conditional
        GET still says who we are and what encodings we read."""
        return {**self._pool.headers, **(headers or {})}

    def _request(
        self, url: str, headers: dict[str, str] | None, timeout: Timeout
    ) -> urllib3.BaseHTTPResponse:
        try:
            return self._pool.request(
                "GET",
                url,
                headers=self._headers_sent(headers),
                timeout=timeout,
                redirect=False,
                preload_content=False,
                decode_content=True,
            )
        except FetchError:
            raise
        except MaxRetryError as exc:
            raise _transport_error(url, exc.reason) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _transport_error(url, exc) from None

    def _read_body(
        self, resp: urllib3.BaseHTTPResponse, limit: int, deadline: Deadline, url: str
    ) -> bytes:
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FetchError("too_large", f"{url} declares {declared} bytes, limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        try:
            # read1: return what one socket read brings, so limits apply as bytes arrive.
            for chunk in iter(lambda: resp.read1(64 * 1024), b""):
                size += len(chunk)
                if size > limit:
                    raise FetchError("too_large", f"{url} exceeds {limit} bytes (decoded)")
                if deadline.expired:
                    break
                chunks.append(chunk)
        except FetchError:
            raise
        except urllib3.exceptions.DecodeError as exc:
            raise FetchError("decode_error", f"{url}: bad content encoding: {exc}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _transport_error(url, exc) from None
        if deadline.expired:
            raise FetchError("timeout", f"{url}: body incomplete at the deadline", transient=True)
        return b"".join(chunks)


def _checked_host(url: str) -> str:
    """The pool key of a URL we may request, or a FetchError saying why not."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise FetchError("bad_url", f"malformed URL {url[:200]!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise FetchError("bad_url", f"not an http(s) URL: {url[:200]!r}")
    if "%" in hostname:  # an IPv6 zone id names a local interface: never a publisher
        raise BlockedAddress(f"{hostname}: IPv6 zone ids are refused")
    return parts.netloc.lower()


def _transport_error(url: str, exc: BaseException | None) -> FetchError:
    # NewConnectionError subclasses ConnectTimeoutError: test it first.
    if isinstance(exc, FetchError):
        return exc
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return FetchError("connection_error", f"{url}: {exc}", transient=True)
    if isinstance(exc, urllib3.exceptions.TimeoutError | socket.timeout):
        return FetchError("timeout", f"{url}: {exc}", transient=True)
    return FetchError("connection_error", f"{url}: {exc}", transient=True)


def _type_ok(ctype: str, accept: tuple[str, ...]) -> bool:
    for pattern in accept:
        if pattern.endswith("/*") and ctype.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*") and ctype.endswith(pattern[1:]):
            return True
        if ctype == pattern:
            return True
    return False
