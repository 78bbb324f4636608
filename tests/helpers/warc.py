"""Fetch records that break a careless WARC writer, and the file they make (test_warc)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from ingest.warc import FetchRecord, RecordLocation, WarcWriter

WHEN = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
UA = {"User-Agent": "newsflow-test/1.0 (+https://example.org/bot)", "Accept-Encoding": "gzip"}


def _records() -> list[FetchRecord]:
    """Pages chosen to break a careless writer: redirects, bytes that are not UTF-8,
    binary bodies holding CRLFs, odd header values, an IRI, no IP, IPv6, no body."""
    return [
        FetchRecord(
            url="https://news.example/a",
            final_url="https://news.example/a",
            redirects=[],
            status=200,
            headers={"content-type": "text/html; charset=utf-8", "server": "nginx"},
            body="<html><p>Hello, world ✓</p></html>".encode(),
            fetched_at=WHEN,
            ip_address="192.0.2.10",
            request_headers=dict(UA),
        ),
        FetchRecord(  # a redirect chain, the body was gzip on the wire
            url="http://t.example/r?id=1",
            final_url="https://www.news.example/2024/05/story.html?utm=x&y=1",
            redirects=["http://t.example/r?id=1", "https://t.example/r?id=1"],
            status=200,
            headers={
                "content-type": "text/html",
                "content-encoding": "gzip",
                "content-length": "1234",
                "vary": "Accept-Encoding",
            },
            body=b"<html><body>" + b"story " * 500 + b"</body></html>",
            fetched_at=WHEN.replace(microsecond=0),
            ip_address="2001:db8::1",
            request_headers=dict(UA),
        ),
        FetchRecord(  # not UTF-8: Latin-1 and Shift_JIS bytes, chunked on the wire
            url="https://fr.example/caf%C3%A9",
            final_url="https://fr.example/caf%C3%A9",
            redirects=[],
            status=200,
            headers={
                "Content-Type": "text/html; charset=iso-8859-1",
                "Transfer-Encoding": "chunked",
                "Content-Encoding": "deflate",
            },
            body="<p>Grüße, café, naïve</p>".encode("latin-1") + "日本語".encode("shift_jis"),
            fetched_at=WHEN + timedelta(seconds=1),
            ip_address=None,
            request_headers={},
        ),
        FetchRecord(  # binary-ish: every byte value, CRLFs, something that looks like a record
            url="https://img.example/x.bin",
            final_url="https://img.example/x.bin",
            redirects=[],
            status=200,
            headers={"content-type": "application/octet-stream"},
            body=bytes(range(256)) + b"\r\n\r\nWARC/1.1\r\n\r\n\x1f\x8b\x08\x00" + bytes(1000),
            fetched_at=WHEN + timedelta(seconds=2),
            ip_address="198.51.100.7",
            request_headers={"User-Agent": "x", "Host": "img.example"},
        ),
        FetchRecord(  # header values that are legal on the wire but easy to mangle
            url="https://odd.example/ä?q=ü",
            final_url="https://odd.example/ä?q=ü",
            redirects=[],
            status=203,
            headers={
                "content-disposition": "attachment; filename=\"r\xe9sum\xe9.html\"; x=';:'",
                "x-utf8-as-received": "Ã©tÃ©",  # UTF-8 bytes decoded as ISO-8859-1
                "x-empty": "",
                "x-colons": "a: b: c",
                "link": '<https://odd.example/>; rel="canonical", </a>; rel=preload',
                "set-cookie": "a=1; Path=/; Expires=Wed, 21 Oct 2026 07:28:00 GMT, b=2",
                "x-long": "v" * 5000,
                "X-Newsflow-Original-Foo": "server-sent header with our prefix",
            },
            body=b"",
            fetched_at=WHEN + timedelta(seconds=3),
            ip_address="203.0.113.5",
            request_headers={"User-Agent": "caf\xe9 bot"},
        ),
    ]


def _expected(rec: FetchRecord) -> FetchRecord:
    """read_record parses the response record only: request headers live in the request
    record, which the (offset, length) range does not cover."""
    return dataclasses.replace(rec, request_headers={})


def _write(records: list[FetchRecord]) -> tuple[bytes, list[RecordLocation]]:
    writer = WarcWriter("newsflow-test/0.1", {"operator": "tests", "isPartOf": "unit"})
    locations = [writer.add(rec) for rec in records]
    assert writer.count == len(records)
    data = writer.getvalue()
    assert writer.size == len(data)
    return data, locations
