"""The one HTTP client: every fetch goes through the address guard, one deadline, byte
limits (after decompression too), redirects checked hop by hop, retries inside the
deadline, per-host politeness and robots.txt."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError
from urllib3.util import Retry, Timeout

from ingest.config import Settings
from ingest.net.deadline import Deadline, Watchdog, fetch_context, running
from ingest.net.errors import FetchError
from ingest.net.guard import checked_host, guarded_connection
from ingest.net.hosts import Hosts
from ingest.net.response import HTML_TYPES, Response
from ingest.net.robots import RobotsCache
from ingest.polling import retry_after_seconds

log = logging.getLogger(__name__)


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
                {"ConnectionCls": guarded_connection(HTTPConnection, allowed)},
            ),
            "https": type(
                "GuardedHTTPSPool",
                (HTTPSConnectionPool,),
                {"ConnectionCls": guarded_connection(HTTPSConnection, allowed)},
            ),
        }
        self._watchdog = Watchdog()
        self._stopping = threading.Event()
        self.hosts = Hosts(
            settings.per_host_concurrency, settings.per_host_delay, self._stopping, self._watchdog
        )
        self.robots = RobotsCache(self)
        self.bytes_received = 0
        self._bytes_lock = threading.Lock()

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
        with self._deadline() as deadline:
            return self._fetch(url, accept, headers, max_bytes, check_robots, deadline)

    def post_form(
        self, url: str, fields: dict[str, str], max_bytes: int = 65_536
    ) -> tuple[int, dict[str, str], bytes]:
        """One form POST (a WebSub hub request): the address guard and one deadline as for
        a GET, no redirects followed, no retries (the caller tries again later), the answer's
        body read up to `max_bytes`. Raises FetchError when no answer came."""
        with self._deadline() as deadline:
            self._check_stopping(url)
            checked_host(url)
            resp = self._request(url, None, self._timeout_within(deadline), form=fields)
            try:
                hdrs = {k.lower(): v for k, v in resp.headers.items()}
                body = self._read_body(resp, max_bytes, deadline, url)
            finally:
                resp.release_conn()
            return resp.status, hdrs, body

    @contextmanager
    def _deadline(self) -> Iterator[Deadline]:
        """One request's deadline, watched (abort() expires it) while the block runs."""
        deadline = Deadline(self.settings.total_timeout)
        self._watchdog.track(deadline)
        if self._stopping.is_set():  # abort() may have swept the deadlines just before
            deadline.expire_now()
        try:
            with running(deadline):
                yield deadline
        finally:
            deadline.release()
            self._watchdog.untrack(deadline)

    def _timeout_within(self, deadline: Deadline) -> Timeout:
        remaining = deadline.remaining()
        return Timeout(
            connect=min(self.settings.connect_timeout, remaining),
            read=min(self.settings.read_timeout, remaining),
        )

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
        fetch_context.peer = None  # set by the connection that answers
        redirects: list[str] = []
        current = url
        retry = self._retry
        while True:
            self._check_stopping(current)
            host = checked_host(current)
            self.hosts.check_paused(host, current)
            if check_robots and settings.respect_robots and not self.robots.allowed(current):
                raise FetchError("robots_disallowed", f"robots.txt disallows {current}")
            try:
                with self.hosts.turn(host, deadline):
                    self._check_stopping(current)
                    self.hosts.check_paused(host, current)  # a pause may have begun while waiting
                    hop = self._hop(current, headers, accept, limit, deadline)
            except FetchError as exc:
                if exc.retry_after is not None:
                    self.hosts.pause(host, exc.retry_after)
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
            peer = getattr(fetch_context, "peer", None)
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
        if deadline.remaining() <= 0:  # never send a request the fetch has no time left for
            raise self._timeout(deadline, "before sending the request")
        try:
            resp = self._request(url, headers, self._timeout_within(deadline))
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
            refused = _refusal(url, status, hdrs, accept)
            if refused is not None:
                raise refused
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
        self,
        url: str,
        headers: dict[str, str] | None,
        timeout: Timeout,
        form: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """A GET, or a POST of `form` (urlencoded); transport failures as FetchError."""
        body = {"fields": form, "encode_multipart": False} if form is not None else {}
        try:
            return self._pool.request(
                "POST" if form is not None else "GET",
                url,
                headers=self._headers_sent(headers),
                timeout=timeout,
                redirect=False,
                preload_content=False,
                decode_content=True,
                **body,
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


def _refusal(
    url: str, status: int, headers: dict[str, str], accept: tuple[str, ...] | None
) -> FetchError | None:
    """Why a final (non-redirect, non-304) response is not a body to read, if it is not."""
    if status >= 400:
        retry_after = (
            retry_after_seconds(headers.get("retry-after")) if status in (429, 503) else None
        )
        return FetchError(
            f"http_{status}",
            f"{url} answered {status}"
            + (f" (Retry-After {retry_after:.0f}s)" if retry_after else ""),
            status=status,
            transient=status in (408, 425, 429) or status >= 500,
            retry_after=retry_after,
        )
    if status != 200:
        return FetchError(f"http_{status}", f"{url} answered {status}", status=status)
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if accept is not None and ctype and not _type_ok(ctype, accept):
        return FetchError("bad_content_type", f"{url} is {ctype}, expected {accept}", status=status)
    return None


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
