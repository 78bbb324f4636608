"""The one loopback HTTP server of the project: tests, the demo site and the benchmarks.

Real sockets and real HTTP, so the client's guard, limits and decoding are exercised
exactly as against a publisher: keep-alive, TCP_NODELAY, GET and HEAD, conditional GET
(weak ETag comparison, If-Modified-Since only without If-None-Match, RFC 9110 13.1-13.2).
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = False  # send validators and answer a matching request with 304
    etag: str | None = None  # with `conditional`: default is a hash of the body
    last_modified: datetime | None = None

    def validators(self) -> dict[str, str]:
        if not self.conditional:
            return {}
        etag = self.etag or '"' + hashlib.sha1(self.body).hexdigest() + '"'
        out = {"ETag": etag}
        if self.last_modified is not None:
            out["Last-Modified"] = format_datetime(self.last_modified, usegmt=True)
        return out

    def not_modified(self, request: BaseHTTPRequestHandler) -> bool:
        """If-None-Match (weak comparison), else If-Modified-Since."""
        if not self.conditional:
            return False
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            return _etag_matches(inm, self.validators()["ETag"])
        ims = request.headers.get("If-Modified-Since")
        if ims is None or self.last_modified is None:
            return False
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return self.last_modified <= since


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


Handler = Callable[[BaseHTTPRequestHandler], None]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        """Silent: clients hang up on keep-alive connections, and tests do it on purpose."""


class FixtureServer:
    """A loopback site. Another `host` in 127.0.0.0/8 (e.g. 127.0.0.2) is another
    publisher as far as the engine can tell (sharding and politeness go by host).
    `hits` counts requests by path; `handler_cpu` is the thread CPU the server spent."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, server_version: str = "NewsflowLoopback/1"
    ) -> None:
        self.host = host
        self.port = port
        self.server_version = server_version
        self.routes: dict[str, Route | Handler] = {}
        self.hits: Counter[str] = Counter()
        self.handler_cpu = 0.0
        self._lock = threading.Lock()
        self.base_url = ""

    def add(self, path: str, route: Route | Handler) -> str:
        self.routes[path] = route
        return self.base_url + path

    def url(self, path: str) -> str:
        return self.base_url + path

    def reset_stats(self) -> None:
        with self._lock:
            self.hits.clear()
            self.handler_cpu = 0.0

    def _arrived(self, path: str) -> None:
        with self._lock:
            self.hits[path] += 1  # counted on arrival: tests wait for a request in flight

    def _spent(self, cpu: float) -> None:
        with self._lock:
            self.handler_cpu += cpu

    @contextmanager
    def running(self) -> Iterator[FixtureServer]:
        httpd = type(
            "_Server",
            (_QuietServer,),
            {"address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET},
        )((self.host, self.port), _handler_class(self))
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{netloc}:{httpd.server_address[1]}"
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"loopback-{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            thread.join(timeout=5)
            httpd.server_close()


def _handler_class(server: FixtureServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive; every response has a Content-Length
        # TCP_NODELAY, as production servers set it: on a Nagle socket the body write that
        # follows the header write waits for the client's delayed ACK, ~40 ms a response.
        disable_nagle_algorithm = True
        server_version = server.server_version
        sys_version = ""

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._respond(send_body=True)

        def do_HEAD(self) -> None:
            self._respond(send_body=False)

        def do_POST(self) -> None:  # a handler route reads the body itself (a WebSub hub)
            self._respond(send_body=True)

        def _respond(self, send_body: bool) -> None:
            started = time.thread_time()
            path = self.path.split("?")[0]
            server._arrived(path)
            route = server.routes.get(self.path) or server.routes.get(path)
            try:
                if route is None:
                    self._send(404, b"not found", "text/plain", {}, send_body)
                elif callable(route):
                    route(self)
                else:
                    headers = {**route.headers, **route.validators()}
                    if route.not_modified(self):
                        self._send(304, b"", None, headers, send_body=False)
                    else:
                        self._send(route.status, route.body, route.content_type, headers, send_body)
            finally:
                server._spent(time.thread_time() - started)

        def _send(
            self, status: int, body: bytes, ctype: str | None, headers: dict, send_body: bool
        ) -> None:
            self.send_response(status)
            if ctype:
                self.send_header("Content-Type", ctype)
            for key, value in headers.items():
                self.send_header(key, value)
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body and status != 304:
                self.wfile.write(body)

    return _Handler


def send_html(req: BaseHTTPRequestHandler, body: bytes, ctype: str = "text/html; charset=utf-8"):
    """Answer 200 with a body, from inside a handler."""
    req.send_response(200)
    req.send_header("Content-Type", ctype)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)


def slow_page(body: bytes, delay: float) -> Handler:
    """A handler that thinks for `delay` seconds, then answers normally."""

    def handler(req: BaseHTTPRequestHandler) -> None:
        time.sleep(delay)
        send_html(req, body)

    return handler


def trickle_headers(req: BaseHTTPRequestHandler) -> None:
    """Status line, then one header byte per 0.1 s: each byte resets a read timeout."""
    try:
        req.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for byte in b"X-Slow: " + b"a" * 10_000:
            req.wfile.write(bytes([byte]))
            req.wfile.flush()
            time.sleep(0.1)
    except OSError:
        pass


def article_html(
    title: str,
    paragraphs: list[str],
    *,
    lang: str = "en",
    published: str | None = None,
    canonical: str | None = None,
    charset: str | None = "utf-8",
) -> str:
    """A publisher-like page: nav, article, 'Latest news' block, footer."""
    meta = f'<meta charset="{charset}">' if charset else ""
    if published:
        meta += f'<meta property="article:published_time" content="{published}">'
    if canonical:
        meta += f'<link rel="canonical" href="{canonical}">'
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="{lang}"><head>{meta}<title>{title}</title></head><body>'
        '<header><nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li>'
        '<li><a href="/economy">Economy</a></li></ul></nav></header>'
        f"<main><article><h1>{title}</h1>{body}</article>"
        '<aside class="latest"><h2>Latest news</h2><ul>'
        '<li><a href="/x1">Harbour strike enters third week</a> <time>14.Dec.2025</time></li>'
        '<li><a href="/x2">Central bank holds rates steady</a> <time>13.Dec.2025</time></li>'
        "</ul></aside></main>"
        "<footer><p>© 2025 Example Ledger. All rights reserved.</p></footer></body></html>"
    )


def rss(items: list[dict[str, str]], title: str = "Test feed") -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>',
        f"<title>{title}</title><link>http://example.invalid/</link><description>t</description>",
    ]
    for item in items:
        parts.append("<item>")
        for key, value in item.items():
            parts.append(f"<{key}>{value}</{key}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


_WORDS = (
    "council ministers harbour budget inflation reform coalition election court "
    "ruling pipeline refinery drought harvest villagers engineers tribunal parliament "
    "treaty negotiators delegation summit sanctions exports tariffs shipyard "
    "railway bridge hospital teachers strike union wages survey analysts forecast "
    "quarter deficit province governor mayor residents flooding reservoir turbines "
    "grid outage satellite "
).split()


def paragraphs(seed: int, count: int = 6, sentences: int = 5) -> list[str]:
    """Deterministic, distinct article prose (varied enough for SimHash to tell apart)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sents = []
        for _ in range(sentences):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(9, 18))]
            sents.append(" ".join(words).capitalize() + ".")
        out.append(" ".join(sents))
    return out
