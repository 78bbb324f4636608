"""The raw WARC archive: every record reads back by (offset, length) alone, the file passes
warcio's own checker and indexer, and concurrent fetch threads never interleave bytes."""

from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import json
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from ingest.warc import FetchRecord, RecordLocation, WarcWriter, read_record
from tests.helpers.warc import UA, WHEN, _expected, _records, _write

WARCIO = str(Path(sys.executable).with_name("warcio"))


def test_every_record_reads_back_by_offset_and_length() -> None:
    records = _records()
    data, locations = _write(records)
    for rec, loc in zip(records, locations, strict=True):
        member = data[loc.offset : loc.offset + loc.length]
        got, record_id = read_record(member)
        assert record_id == loc.record_id
        assert record_id.startswith("<urn:uuid:") and record_id.endswith(">")
        assert got == _expected(rec), rec.url
        assert got.fetched_at.tzinfo is not None
        # the range alone is a complete gzip file
        assert gzip.decompress(member).startswith(b"WARC/1.1\r\n")


def test_stored_http_head_is_self_consistent() -> None:
    """The decoded body is stored, so the transport headers are renamed and the stored
    Content-Length is the stored body's: readers must not try to gunzip or de-chunk it."""
    rec = _records()[2]
    data, [loc] = _write([rec])
    text = gzip.decompress(data[loc.offset : loc.offset + loc.length])
    head = text.split(b"\r\n\r\n")[1].decode("latin-1")
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "X-Newsflow-Original-Transfer-Encoding: chunked" in lines
    assert "X-Newsflow-Original-Content-Encoding: deflate" in lines
    assert f"Content-Length: {len(rec.body)}" in lines
    assert not any(
        line.lower().startswith(("transfer-encoding", "content-encoding")) for line in lines
    )
    record = next(r for r in ArchiveIterator(io.BytesIO(data)) if r.rec_type == "response")
    assert record.content_stream().read() == rec.body


def test_header_values_are_normalised_like_http_does() -> None:
    """Obsolete line folding becomes a space and surrounding whitespace goes; a non-UTC
    time is stored as UTC."""
    rec = dataclasses.replace(
        _records()[0],
        headers={"x-folded": "one\r\n two", "x-padded": "  v  ", "x-lf": "a\nb"},
        fetched_at=datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2))),
    )
    data, [loc] = _write([rec])
    got, _ = read_record(data[loc.offset : loc.offset + loc.length])
    assert got.headers == {"x-folded": "one two", "x-padded": "v", "x-lf": "a b"}
    assert got.fetched_at == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert got.fetched_at.utcoffset() == timedelta(0)


def test_add_rejects_what_would_corrupt_the_file() -> None:
    writer = WarcWriter("newsflow-test/0.1")
    base = _records()[0]
    bad = [
        dataclasses.replace(base, fetched_at=datetime(2024, 1, 1)),  # naive
        dataclasses.replace(base, headers={"bad name": "x"}),
        dataclasses.replace(base, headers={"bad:name": "x"}),
        dataclasses.replace(base, final_url="https://x.example/\r\nWARC-Type: request"),
        dataclasses.replace(base, status=42),
    ]
    for rec in bad:
        with pytest.raises(ValueError):
            writer.add(rec)
    assert writer.count == 0
    assert len(list(ArchiveIterator(io.BytesIO(writer.getvalue())))) == 1  # warcinfo only


def test_warcio_check_and_index_accept_the_file(tmp_path: Path) -> None:
    records = _records()
    data, locations = _write(records)
    path = tmp_path / "pages.warc.gz"
    path.write_bytes(data)

    check = subprocess.run(
        [WARCIO, "check", "-v", str(path)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("digest pass") == 1 + 2 * len(records), check.stdout
    assert "fail" not in check.stdout.lower()

    index = subprocess.run(
        [
            WARCIO,
            "index",
            "-f",
            "offset,length,warc-type,warc-target-uri,warc-record-id",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in index.stdout.splitlines()]
    assert [row["warc-type"] for row in rows] == ["warcinfo"] + ["response", "request"] * len(
        records
    )
    responses = [row for row in rows if row["warc-type"] == "response"]
    for row, rec, loc in zip(responses, records, locations, strict=True):
        assert int(row["offset"]) == loc.offset
        assert int(row["length"]) == loc.length
        assert row["warc-target-uri"] == rec.final_url
        assert row["warc-record-id"] == loc.record_id
    assert sum(int(row["length"]) for row in rows) == len(data)


def test_archive_iterator_sees_warcinfo_then_response_request_pairs() -> None:
    records = _records()
    data, locations = _write(records)
    seen = []
    for record in ArchiveIterator(io.BytesIO(data), check_digests="raise"):
        seen.append(
            (
                record.rec_type,
                dict(record.rec_headers.headers),
                record.http_headers,
                record.content_stream().read(),
            )
        )
    assert [s[0] for s in seen] == ["warcinfo"] + ["response", "request"] * len(records)

    warcinfo_headers, warcinfo_body = seen[0][1], seen[0][3]
    assert b"software: newsflow-test/0.1\r\n" in warcinfo_body
    assert b"operator: tests\r\n" in warcinfo_body
    warcinfo_id = warcinfo_headers["WARC-Record-ID"]

    for i, (rec, loc) in enumerate(zip(records, locations, strict=True)):
        _, resp_headers, resp_http, resp_body = seen[1 + 2 * i]
        _, req_headers, req_http, req_body = seen[2 + 2 * i]
        assert resp_headers["WARC-Record-ID"] == loc.record_id
        assert resp_headers["WARC-Target-URI"] == rec.final_url
        assert resp_headers["WARC-Warcinfo-ID"] == warcinfo_id
        assert resp_http.get_statuscode() == str(rec.status)
        assert resp_body == rec.body
        assert ("WARC-IP-Address" in resp_headers) == (rec.ip_address is not None)
        assert req_headers["WARC-Concurrent-To"] == loc.record_id
        assert req_headers["WARC-Target-URI"] == rec.final_url
        assert req_headers["WARC-Date"] == resp_headers["WARC-Date"]
        assert req_http.protocol == "GET"
        assert req_http.get_header("Host")
        assert req_body == b""
    # the request records keep the headers we sent
    ua = seen[2][2]
    assert ua.get_header("User-Agent") == UA["User-Agent"]
    assert ua.get_header("Host") == "news.example"
    assert seen[8][2].get_header("Host") == "img.example"  # given, not added twice
    assert seen[8][2].statusline == "/x.bin HTTP/1.1"
    redirect = seen[3][1]
    assert json.loads(redirect["WARC-Newsflow-Redirects"]) == records[1].redirects
    assert redirect["WARC-Newsflow-Requested-URI"] == records[1].url
    assert "WARC-Newsflow-Redirects" not in seen[1][1]
    assert "WARC-Newsflow-Requested-URI" not in seen[1][1]
    assert seen[1][1]["WARC-Date"] == "2024-05-06T07:08:09.123456Z"
    assert seen[3][1]["WARC-Date"] == "2024-05-06T07:08:09Z"
    # an IRI travels percent-encoded on the request line
    assert seen[10][2].statusline == "/%C3%A4?q=%C3%BC HTTP/1.1"


def test_concurrent_adds_never_interleave() -> None:
    writer = WarcWriter("newsflow-test/0.1")
    threads, per_thread = 8, 50
    results: dict[int, list[tuple[FetchRecord, RecordLocation]]] = {}
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        mine = []
        for i in range(per_thread):
            rec = FetchRecord(
                url=f"https://t{t}.example/{i}",
                final_url=f"https://t{t}.example/{i}",
                redirects=[],
                status=200,
                headers={"content-type": "text/html", "x-thread": str(t)},
                body=f"<p>thread {t} page {i}</p>".encode() * (1 + i % 7),
                fetched_at=WHEN + timedelta(milliseconds=i),
                ip_address="192.0.2.1",
                request_headers={"User-Agent": "x"},
            )
            mine.append((rec, writer.add(rec)))
        results[t] = mine

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert len(results) == threads
    assert writer.count == threads * per_thread
    data = writer.getvalue()

    for mine in results.values():  # each thread's own adds land in its own order
        offsets = [loc.offset for _, loc in mine]
        assert offsets == sorted(offsets)
    everything = sorted((loc.offset, loc, rec) for mine in results.values() for rec, loc in mine)
    for (_, a, _), (_, b, _) in itertools.pairwise(everything):
        assert a.offset + a.length < b.offset  # the request record sits between
    assert len({loc.record_id for _, loc, _ in everything}) == threads * per_thread
    for _, loc, rec in everything:
        got, record_id = read_record(data[loc.offset : loc.offset + loc.length])
        assert record_id == loc.record_id
        assert got == _expected(rec)
    types = [r.rec_type for r in ArchiveIterator(io.BytesIO(data))]
    assert types == ["warcinfo"] + ["response", "request"] * (threads * per_thread)


def test_read_record_rejects_anything_but_one_response_member() -> None:
    records = _records()[:2]
    data, locations = _write(records)
    loc = locations[0]
    member = data[loc.offset : loc.offset + loc.length]
    warcinfo = data[: locations[0].offset]
    request = data[loc.offset + loc.length : locations[1].offset]
    raw = gzip.decompress(member)
    tampered = gzip.compress(raw.replace(b"Hello, world", b"Hello, World"))
    not_warc = gzip.compress(b"HTTP/1.1 200 OK\r\n\r\nhello")
    length = int(re.search(rb"\r\nContent-Length: (\d+)\r\n", raw).group(1))

    def with_length(n: int) -> bytes:
        head = b"\r\nContent-Length: %d\r\n" % n
        return gzip.compress(re.sub(rb"\r\nContent-Length: \d+\r\n", head, raw, count=1))

    bad_inputs = {
        "empty": b"",
        "text": b"not a warc record at all",
        "uncompressed record": raw,
        "gzip magic then junk": b"\x1f\x8b" + bytes(range(200)),
        "truncated": member[:-10],
        "two members": data[loc.offset : locations[1].offset],
        "trailing bytes": member + b"x",
        "warcinfo": warcinfo,
        "request": request,
        "digest mismatch": tampered,
        "gzip of non-WARC": not_warc,
        "whole file": data,
        "length one short": with_length(length - 1),
        "length one long": with_length(length + 1),
        "length far too long": with_length(length + 1000),  # digests never reached
    }
    for name, bad in bad_inputs.items():
        with pytest.raises(ValueError):
            read_record(bad)
            pytest.fail(f"accepted {name}")
