"""A scriptable HTTP server on loopback for tests: static routes, handlers, hit counts.

Real sockets and real HTTP, so the client's guard, limits and decoding are exercised
exactly as against a publisher.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str | None = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    conditional: bool = False  # answer If-None-Match with 304


Handler = Callable[[BaseHTTPRequestHandler], None]


class FixtureServer:
    """A loopback site. Another `host` in 127.0.0.0/8 (e.g. 127.0.0.2) is another
    publisher as far as the engine can tell (sharding and politeness go by host)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Route | Handler] = {}
        self.hits: Counter[str] = Counter()
        self.base_url = ""

    def add(self, path: str, route: Route | Handler) -> str:
        self.routes[path] = route
        return self.base_url + path

    def url(self, path: str) -> str:
        return self.base_url + path

    @contextmanager
    def running(self) -> Iterator[FixtureServer]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per response

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path
                server.hits[path.split("?")[0]] += 1
                route = server.routes.get(path) or server.routes.get(path.split("?")[0])
                if route is None:
                    self._send(404, b"not found", "text/plain", {})
                    return
                if callable(route):
                    route(self)
                    return
                headers = dict(route.headers)
                if route.conditional:
                    etag = '"' + hashlib.sha1(route.body).hexdigest() + '"'
                    headers["ETag"] = etag
                    if self.headers.get("If-None-Match") == etag:
                        self._send(304, b"", None, headers)
                        return
                self._send(route.status, route.body, route.content_type, headers)

            def _send(self, status: int, body: bytes, ctype: str | None, headers: dict) -> None:
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    self.wfile.write(body)

        httpd = ThreadingHTTPServer((self.host, 0), _Handler)
        httpd.daemon_threads = True
        httpd.handle_error = lambda request, address: None  # clients hang up on purpose
        self.base_url = f"http://{self.host}:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            httpd.shutdown()
            httpd.server_close()


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
