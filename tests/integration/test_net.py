"""The guarded HTTP client against real HTTP servers on loopback."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from ingest.config import Settings
from ingest.net import FetchError, HttpClient, Response, decode_html
from newsflow_dev.loopback import FixtureServer, Route, send_html, trickle_headers
from tests.helpers.net import client

RUSSIAN = "Москва и Тегеран обсуждают ядерную программу. Переговоры продолжатся в декабре."


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer().running() as srv:
        yield srv


def test_plain_fetch_sends_user_agent(server: FixtureServer) -> None:
    seen = {}

    def handler(req: BaseHTTPRequestHandler) -> None:
        seen["ua"] = req.headers.get("User-Agent")
        send_html(req, b"<html><body>ok</body></html>", "text/html")

    server.add("/ua", handler)
    resp = client(user_agent="newsflow-test/1").get(server.url("/ua"))
    assert resp.status == 200 and resp.body.endswith(b"ok</body></html>")
    assert seen["ua"] == "newsflow-test/1"


def test_loopback_refused_unless_allowed(server: FixtureServer) -> None:
    server.add("/p", Route(b"<p>x</p>"))
    with pytest.raises(FetchError) as err:
        HttpClient(Settings.from_env({}, http_retries=0)).get(server.url("/p"))
    assert err.value.reason == "blocked_address"
    assert "not a public address" in err.value.detail


def test_redirect_to_metadata_refused_on_the_hop(server: FixtureServer) -> None:
    server.add("/r", Route(status=302, headers={"Location": "http://169.254.169.254/x"}))
    with pytest.raises(FetchError) as err:
        client().get(server.url("/r"))
    assert err.value.reason == "blocked_address"


def test_redirect_chain_followed_and_limited(server: FixtureServer) -> None:
    for i in range(1, 8):
        server.add(f"/r{i}", Route(status=301, headers={"Location": f"/r{i + 1}"}))
    server.add("/r8", Route(b"<html><body>landed</body></html>"))
    resp = client(max_redirects=10).get(server.url("/r5"))
    assert resp.final_url == server.url("/r8")
    assert resp.redirects == [server.url(f"/r{i}") for i in (5, 6, 7)]
    with pytest.raises(FetchError) as err:
        client(max_redirects=5).get(server.url("/r1"))
    assert err.value.reason == "too_many_redirects"


def test_slow_response_times_out(server: FixtureServer) -> None:
    def slow(req: BaseHTTPRequestHandler) -> None:
        time.sleep(3)

    def trickle(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/html")
        req.send_header("Content-Length", "100000")
        req.end_headers()
        try:
            for _ in range(100):
                req.wfile.write(b"<p>" * 10)
                req.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    server.add("/slow", slow)
    server.add("/trickle", trickle)
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        client(read_timeout=1.0).get(server.url("/slow"))
    assert err.value.reason == "timeout" and err.value.transient
    with pytest.raises(FetchError) as err:
        client(total_timeout=1.5, read_timeout=1.0).get(server.url("/trickle"))
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 10


def test_byte_limit_declared_streamed_and_decompressed(server: FixtureServer) -> None:
    big = b"<p>" + b"x" * 300_000
    server.add("/declared", Route(big))

    def chunked(req: BaseHTTPRequestHandler) -> None:
        req.send_response(200)
        req.send_header("Content-Type", "text/html")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        for _ in range(40):
            chunk = b"y" * 10_000
            req.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        req.wfile.write(b"0\r\n\r\n")

    bomb = gzip.compress(b"\0" * 5_000_000)
    assert len(bomb) < 100_000
    server.add("/chunked", chunked)
    server.add("/bomb", Route(bomb, headers={"Content-Encoding": "gzip"}))
    c = client(max_bytes=200_000)
    for path in ("/declared", "/chunked", "/bomb"):
        with pytest.raises(FetchError) as err:
            c.get(server.url(path))
        assert err.value.reason == "too_large", path
    small = gzip.compress(b"<html><body>fine</body></html>")
    server.add("/gz", Route(small, headers={"Content-Encoding": "gzip"}))
    assert c.get(server.url("/gz")).body == b"<html><body>fine</body></html>"


def test_content_type_checked(server: FixtureServer) -> None:
    server.add("/img", Route(b"\x89PNG....", content_type="image/png"))
    with pytest.raises(FetchError) as err:
        client().get(server.url("/img"))
    assert err.value.reason == "bad_content_type"


def test_status_errors_and_retries(server: FixtureServer) -> None:
    server.add("/gone", Route(b"no", status=404))
    server.add("/down", Route(b"no", status=503))
    with pytest.raises(FetchError) as err:
        client().get(server.url("/gone"))
    assert (err.value.reason, err.value.status, err.value.transient) == ("http_404", 404, False)
    with pytest.raises(FetchError) as err:
        client(http_retries=2).get(server.url("/down"))
    assert (err.value.reason, err.value.transient) == ("http_503", True)
    assert server.hits["/down"] == 3  # first try + 2 retries


def _decoded(resp: Response) -> str:
    """As the extraction worker decodes a fetched page."""
    return decode_html(resp.body, resp.headers.get("content-type", ""))


@pytest.mark.parametrize(
    ("content_type", "meta"),
    [
        ("text/html; charset=windows-1251", ""),  # header
        ("text/html", '<meta charset="windows-1251">'),  # meta only
        ("text/html", '<meta http-equiv="Content-Type" content="text/html; charset=cp1251">'),
        ("text/html", ""),  # nothing declared: detected
    ],
)
def test_windows_1251_page_decodes_to_cyrillic(
    server: FixtureServer, content_type: str, meta: str
) -> None:
    html = f"<html><head>{meta}<title>Новости</title></head><body><p>{RUSSIAN}</p></body></html>"
    server.add("/ru", Route(html.encode("cp1251"), content_type=content_type))
    assert RUSSIAN in _decoded(client().get(server.url("/ru")))


def test_bom_wins_over_wrong_header(server: FixtureServer) -> None:
    html = f"<html><body><p>{RUSSIAN}</p></body></html>"
    server.add(
        "/bom",
        Route(b"\xef\xbb\xbf" + html.encode("utf-8"), content_type="text/html; charset=iso-8859-1"),
    )
    assert RUSSIAN in _decoded(client().get(server.url("/bom")))


def test_robots_txt_honoured(server: FixtureServer) -> None:
    server.add(
        "/robots.txt", Route(b"User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    )
    server.add("/private/a", Route(b"<p>secret</p>"))
    server.add("/public/a", Route(b"<p>public</p>"))
    c = client()
    assert c.get(server.url("/public/a"), check_robots=True).status == 200
    with pytest.raises(FetchError) as err:
        c.get(server.url("/private/a"), check_robots=True)
    assert err.value.reason == "robots_disallowed"
    assert server.hits["/private/a"] == 0
    assert server.hits["/robots.txt"] == 1  # cached per origin


def test_header_trickle_is_bounded_by_the_total_deadline(server: FixtureServer) -> None:
    server.add("/headers", trickle_headers)
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        client(total_timeout=1.5, read_timeout=1.0, http_retries=2).get(server.url("/headers"))
    elapsed = time.monotonic() - started
    assert err.value.reason == "timeout" and "deadline" in err.value.detail
    assert elapsed < 3.0, elapsed  # the budget, plus scheduling slack; never minutes


def test_retries_and_backoff_stay_inside_the_deadline(server: FixtureServer) -> None:
    def reset(req: BaseHTTPRequestHandler) -> None:
        time.sleep(0.4)
        req.send_response(503)
        req.send_header("Content-Length", "0")
        req.end_headers()

    server.add("/flaky", reset)
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        client(total_timeout=2.0, http_retries=10).get(server.url("/flaky"))
    elapsed = time.monotonic() - started
    assert err.value.reason == "http_503"
    assert elapsed < 3.0, elapsed
    assert 2 <= server.hits["/flaky"] < 11  # it retried, and stopped when time ran out


def test_waiting_for_a_host_slot_is_not_fetching(server: FixtureServer) -> None:
    """Two slow pages first on a host must not make the host's other pages time out."""
    from concurrent.futures import ThreadPoolExecutor

    def slow(req: BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)  # longer than the budget: these two time out themselves

    server.add("/slow", slow)
    for i in range(6):
        server.add(f"/ok{i}", Route(b"<html><body>fine</body></html>"))
    c = client(total_timeout=1.0, read_timeout=5.0, per_host_concurrency=1)

    def fetch(path: str) -> str:
        try:
            return c.get(server.url(path)).body.decode()
        except FetchError as exc:
            return exc.reason

    with ThreadPoolExecutor(8) as pool:
        slow_results = [pool.submit(fetch, f"/slow?{i}") for i in range(2)]
        time.sleep(0.05)  # the slow ones take the host's slot first, one after the other
        ok_results = [pool.submit(fetch, f"/ok{i}") for i in range(6)]
        assert [f.result() for f in slow_results] == ["timeout", "timeout"]
        assert [f.result() for f in ok_results] == ["<html><body>fine</body></html>"] * 6


def test_retry_after_pauses_the_host_for_the_rest_of_the_run(server: FixtureServer) -> None:
    server.add("/busy", Route(b"slow down", status=429, headers={"Retry-After": "3600"}))
    server.add("/other", Route(b"<p>fine</p>"))
    c = client(http_retries=3)
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        c.get(server.url("/busy"))
    assert err.value.reason == "http_429" and err.value.retry_after == 3600
    assert err.value.transient and "Retry-After 3600s" in err.value.detail
    assert server.hits["/busy"] == 1  # no retry into a pause the server asked for
    with pytest.raises(FetchError) as err:
        c.get(server.url("/other"))
    assert err.value.reason == "rate_limited" and err.value.transient
    assert server.hits["/other"] == 0  # nothing more sent to that host in this run
    assert time.monotonic() - started < 2
    # another client (the next run) asks again
    assert client().get(server.url("/other")).status == 200


def test_a_short_retry_after_is_waited_out_within_the_fetch(server: FixtureServer) -> None:
    answers = iter([(503, b"later"), (200, b"<p>now</p>")])

    def handler(req: BaseHTTPRequestHandler) -> None:
        status, body = next(answers)
        req.send_response(status)
        req.send_header("Content-Type", "text/html")
        if status == 503:
            req.send_header("Retry-After", "1")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        req.wfile.write(body)

    server.add("/flaky", handler)
    started = time.monotonic()
    resp = client(http_retries=2).get(server.url("/flaky"))
    assert resp.body == b"<p>now</p>" and time.monotonic() - started >= 1.0


def test_given_headers_do_not_drop_user_agent_and_encodings(server: FixtureServer) -> None:
    seen = {}

    def handler(req: BaseHTTPRequestHandler) -> None:
        seen.update(req.headers)
        send_html(req, b"<p>ok</p>", "text/html")

    server.add("/h", handler)
    client(user_agent="newsflow-test/2").get(server.url("/h"), headers={"If-None-Match": '"x"'})
    assert seen["User-Agent"] == "newsflow-test/2" and seen["If-None-Match"] == '"x"'
    assert "gzip" in seen["Accept-Encoding"]
