"""Raw archive of fetched pages as WARC/1.1, so any page can be re-extracted later.

One file holds a warcinfo record, then per page a `response` record followed by its
`request` record (WARC-Concurrent-To the response). Every record is its own gzip member, so
`(offset, length)` of a response record is a valid gzip file on its own: a ranged GET of
those bytes is enough to re-read one page, which is how Common Crawl's indexes work.

Record layout choices (the record has to be self-consistent for `warcio check` and any
WARC reader, while `read_record` gives back the `FetchRecord` that was written):

- The fetcher decodes Content-Encoding before we see the body, so the stored body is the
  decoded one. The response's `Content-Encoding`, `Content-Length` and `Transfer-Encoding`
  headers are therefore renamed to `X-Newsflow-Original-<name>` (the name as received) and
  a `Content-Length` of the stored body is added. `read_record` undoes exactly that.
- The redirect chain is not stored as records per hop: the response carries
  `WARC-Newsflow-Redirects` (a JSON array of the hop URLs, in order) when there were
  redirects, and `WARC-Newsflow-Requested-URI` (the link as requested) when it differs from
  the final URL. WARC-Target-URI is the final URL, the one that answered.
- HTTP header values are written as ISO-8859-1 bytes, the way the HTTP client decoded them
  off the wire (warcio's own serialiser would %-encode non-ASCII), and read back the same
  way. Line breaks inside a value (obsolete folding) become a space and surrounding
  whitespace is trimmed, as HTTP does anyway. A character beyond U+00FF cannot have come
  off the wire; such a value is written as UTF-8 and so reads back as its ISO-8859-1 view.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from urllib.parse import urlsplit

from w3lib.url import safe_url_string
from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import (
    StatusAndHeaders,
    StatusAndHeadersParser,
    StatusAndHeadersParserException,
)
from warcio.timeutils import datetime_to_iso_date, iso_date_to_datetime
from warcio.utils import Digester
from warcio.warcwriter import WARCWriter

try:  # ISA-L's deflate: standard gzip members, ~3x zlib's speed at a slightly better ratio
    from isal.igzip import compress as _gzip_compress
except ImportError:  # a platform without its wheels: the standard library's zlib
    from gzip import compress as _gzip_compress

WARC_VERSION = "1.1"
# Measured on the real-page corpus (bench/README, "The raw archive's compression"): zlib level 9
# (what warcio writes) compresses HTML to 19.3 % at 28 MB/s, level 1 to 23.0 % at 167 MB/s;
# ISA-L level 1 to 22.5 % at 576 MB/s. The archive is written on the run's critical path
# and read rarely.
GZIP_LEVEL = 1
REDIRECTS_HEADER = "WARC-Newsflow-Redirects"
REQUESTED_URI_HEADER = "WARC-Newsflow-Requested-URI"
ORIGINAL_PREFIX = "X-Newsflow-Original-"
# Headers that describe the bytes on the wire, not the decoded body that is stored.
TRANSPORT_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field name
_FOLD = re.compile(r"[ \t]*[\r\n]+[ \t]*")


@dataclass(frozen=True)
class FetchRecord:
    """What the fetcher knows about one response that reached extraction."""

    url: str  # the link as requested (first URL of the chain)
    final_url: str  # the URL that answered
    redirects: list[str]  # URLs of the redirect hops before final_url, in order
    status: int
    headers: dict[str, str]  # response headers as received
    body: bytes  # after Content-Encoding decoding
    fetched_at: datetime  # tz-aware UTC
    ip_address: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordLocation:
    """Where a response record is: `file[offset:offset + length]` is one gzip member."""

    offset: int
    length: int
    record_id: str  # "<urn:uuid:...>"


class WarcWriter:
    """Builds one gzip-per-record WARC/1.1 file in memory: a warcinfo record first, then per
    page a response record and its request record. Thread-safe: records are built and
    compressed outside the lock, only the append is serialised. `size` lets the caller roll
    files (e.g. at 64 MB)."""

    def __init__(self, software: str, info: dict[str, str] | None = None) -> None:
        self._lock = threading.Lock()
        self._buf = io.BytesIO()
        self._count = 0
        fields = {
            "software": software,
            "format": "WARC File Format 1.1",
            "conformsTo": "https://iipc.github.io/warc-specifications/"
            "specifications/warc-format/warc-1.1/",
            **(info or {}),
        }
        writer = _writer()
        record = writer.create_warcinfo_record(None, fields)
        self._warcinfo_id: str = record.rec_headers.get_header("WARC-Record-ID")
        self._buf.write(_gzip_record(record))

    def add(self, rec: FetchRecord) -> RecordLocation:
        """Append the response and request records of one page; where the response is."""
        writer = _writer()
        response = _response_record(writer, rec, self._warcinfo_id)
        record_id = response.rec_headers.get_header("WARC-Record-ID")
        response_member = _gzip_record(response)
        request_member = _gzip_record(_request_record(writer, rec, self._warcinfo_id, record_id))
        with self._lock:
            offset = self._buf.tell()
            self._buf.write(response_member)
            self._buf.write(request_member)
            self._count += 1
        return RecordLocation(offset, len(response_member), record_id)

    @property
    def size(self) -> int:
        """Bytes written so far, warcinfo included."""
        with self._lock:
            return self._buf.tell()

    @property
    def count(self) -> int:
        """Response records (pages) written so far."""
        with self._lock:
            return self._count

    def getvalue(self) -> bytes:
        """The whole file as written so far."""
        with self._lock:
            return self._buf.getvalue()


def read_record(data: bytes) -> tuple[FetchRecord, str]:
    """Parse one gzip member (exactly `file[offset:offset + length]`) holding a response
    record written by WarcWriter back into its FetchRecord and record id. Digests are
    verified, so a corrupted range fails here rather than feeding extraction garbage.
    `request_headers` comes back empty: they are in the request record, outside the range.
    ValueError on anything that is not one gzip-compressed WARC response record."""
    raw = _gunzip_one_member(data)
    try:
        records = []
        for record in ArchiveIterator(io.BytesIO(raw), check_digests="raise"):
            if record.format != "warc":
                raise ValueError(f"not a WARC record but {record.format}")
            body = record.raw_stream.read()
            records.append((record.rec_type, record.rec_headers, record.http_headers, body))
    except (ArchiveLoadFailed, StatusAndHeadersParserException, EOFError) as exc:
        raise ValueError(f"not a valid WARC record: {str(exc).strip()}") from None
    if len(records) != 1:
        raise ValueError(f"expected one WARC record in the gzip member, found {len(records)}")
    rec_type, warc_headers, http_headers, body = records[0]
    if rec_type != "response":
        raise ValueError(f"expected a WARC response record, found {rec_type!r}")
    if not http_headers or not http_headers.protocol.upper().startswith("HTTP/"):
        raise ValueError("the response record holds no HTTP response")

    head = _wire_head(raw, warc_headers.get_header("Content-Length"))
    try:
        status = int(head.statusline.split(" ", 1)[0])
    except ValueError:
        raise ValueError(f"bad HTTP status line {head.statusline!r}") from None

    def header(name: str) -> str | None:
        return warc_headers.get_header(name)

    final_url = header("WARC-Target-URI")
    record_id = header("WARC-Record-ID")
    date = header("WARC-Date")
    if not final_url or not record_id or not date:
        raise ValueError("the response record lacks WARC-Target-URI, WARC-Record-ID or WARC-Date")
    try:
        fetched_at = iso_date_to_datetime(date, tz_aware=True)
    except (ValueError, TypeError):
        raise ValueError(f"bad WARC-Date {date!r}") from None
    redirects_json = header(REDIRECTS_HEADER)
    try:
        redirects = json.loads(redirects_json) if redirects_json else []
    except ValueError:
        raise ValueError(f"bad {REDIRECTS_HEADER} {redirects_json!r}") from None
    if not isinstance(redirects, list) or not all(isinstance(u, str) for u in redirects):
        raise ValueError(f"bad {REDIRECTS_HEADER} {redirects_json!r}")
    fetch = FetchRecord(
        url=header(REQUESTED_URI_HEADER) or final_url,
        final_url=final_url,
        redirects=redirects,
        status=status,
        headers=_original_headers(head.headers),
        body=body,
        fetched_at=fetched_at,
        ip_address=header("WARC-IP-Address"),
    )
    return fetch, record_id


class _WireHead(StatusAndHeaders):
    """An HTTP head serialised as ISO-8859-1, i.e. the bytes the client decoded: warcio's
    own `compute_headers_buffer` would %-encode every non-ASCII value."""

    def compute_headers_buffer(self, header_filter: object = None) -> None:
        lines = [f"{self.protocol} {self.statusline}".strip()]
        lines += [f"{name}: {value}" for name, value in self.headers]
        self.headers_buff = b"".join(_latin1(line) + b"\r\n" for line in lines) + b"\r\n"


class _Latin1Parser(StatusAndHeadersParser):
    """The reading side of _WireHead (warcio tries UTF-8 first)."""

    @staticmethod
    def decode_header(line: bytes | str) -> str:
        return line.decode("iso-8859-1") if isinstance(line, bytes) else line


def _writer() -> WARCWriter:
    """Creates records only; `_gzip_record` serialises and compresses each one."""
    return WARCWriter(io.BytesIO(), gzip=False, warc_version=WARC_VERSION)


def _gzip_record(record: ArcWarcRecord) -> bytes:
    """One record as its own gzip member, at GZIP_LEVEL (warcio's own gzip is level 9)."""
    out = io.BytesIO()
    WARCWriter(out, gzip=False, warc_version=WARC_VERSION).write_record(record)
    return _gzip_compress(out.getvalue(), GZIP_LEVEL, mtime=0)


def _latin1(text: str) -> bytes:
    try:
        return text.encode("iso-8859-1")
    except UnicodeEncodeError:  # cannot have come off the wire; keep it readable
        return text.encode("utf-8")


def _warc_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"line break in {name}: {value!r}")
    return value


def _http_fields(headers: dict[str, str]) -> list[tuple[str, str]]:
    fields = []
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid HTTP header name {name!r}")
        fields.append((name, _FOLD.sub(" ", value).strip()))
    return fields


def _warc_date(when: datetime) -> str:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"fetched_at must be timezone-aware, got {when!r}")
    return datetime_to_iso_date(when.astimezone(UTC).replace(tzinfo=None), use_micros=True)


def _response_record(writer: WARCWriter, rec: FetchRecord, warcinfo_id: str) -> ArcWarcRecord:
    if not 100 <= rec.status <= 999:
        raise ValueError(f"invalid HTTP status {rec.status}")
    warc_headers = {
        "WARC-Type": "response",
        "WARC-Record-ID": StatusAndHeadersParser.make_warc_id(),
        "WARC-Date": _warc_date(rec.fetched_at),
        "WARC-Target-URI": _warc_value("final_url", rec.final_url),
        "WARC-Warcinfo-ID": warcinfo_id,
    }
    if rec.ip_address:
        warc_headers["WARC-IP-Address"] = _warc_value("ip_address", rec.ip_address)
    if rec.url != rec.final_url:
        warc_headers[REQUESTED_URI_HEADER] = _warc_value("url", rec.url)
    if rec.redirects:
        warc_headers[REDIRECTS_HEADER] = json.dumps(rec.redirects, ensure_ascii=False)

    fields = []
    for name, value in _http_fields(rec.headers):
        if name.lower() in TRANSPORT_HEADERS:
            name = ORIGINAL_PREFIX + name
        fields.append((name, value))
    fields.append(("Content-Length", str(len(rec.body))))
    try:
        reason = HTTPStatus(rec.status).phrase
    except ValueError:
        reason = ""
    head = _WireHead(f"{rec.status} {reason}".strip(), fields, protocol="HTTP/1.1")
    # warcio's digests, fed the whole page at once: its writer would read it in 16 KiB pieces
    head.compute_headers_buffer()
    payload, block = Digester("sha1"), Digester("sha1")
    payload.update(rec.body)
    block.update(head.headers_buff)
    block.update(rec.body)
    warc_headers["WARC-Payload-Digest"] = str(payload)
    warc_headers["WARC-Block-Digest"] = str(block)
    return writer.create_warc_record(
        rec.final_url,
        "response",
        payload=io.BytesIO(rec.body),
        length=len(rec.body),
        warc_headers_dict=warc_headers,
        http_headers=head,
    )


def _request_record(
    writer: WARCWriter, rec: FetchRecord, warcinfo_id: str, response_id: str
) -> ArcWarcRecord:
    """The GET that got the final response; Host added when the client set it implicitly."""
    parts = urlsplit(safe_url_string(rec.final_url))
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    fields = _http_fields(rec.request_headers)
    if not any(name.lower() == "host" for name, _ in fields):
        fields.insert(0, ("Host", parts.netloc.rsplit("@", 1)[-1]))
    warc_headers = {
        "WARC-Type": "request",
        "WARC-Record-ID": StatusAndHeadersParser.make_warc_id(),
        "WARC-Date": _warc_date(rec.fetched_at),
        "WARC-Target-URI": rec.final_url,
        "WARC-Warcinfo-ID": warcinfo_id,
        "WARC-Concurrent-To": response_id,
    }
    if rec.ip_address:
        warc_headers["WARC-IP-Address"] = rec.ip_address
    head = _WireHead(f"GET {target} HTTP/1.1", fields, protocol="")
    return writer.create_warc_record(
        rec.final_url, "request", warc_headers_dict=warc_headers, http_headers=head
    )


def _gunzip_one_member(data: bytes) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ValueError(f"expected bytes, got {type(data).__name__}")
    if bytes(data[:2]) != b"\x1f\x8b":
        raise ValueError("not a gzip member (WARC records here are gzip-compressed)")
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        raw = decompressor.decompress(data) + decompressor.flush()
    except zlib.error as exc:
        raise ValueError(f"corrupt gzip member: {exc}") from None
    if not decompressor.eof:
        raise ValueError("truncated gzip member: the range ends before the record does")
    if decompressor.unused_data:
        raise ValueError("bytes after the gzip member: the range spans more than one record")
    return raw


def _wire_head(raw: bytes, content_length: str | None) -> StatusAndHeaders:
    """The HTTP head exactly as stored: the block starts after the WARC header section
    and the HTTP head ends at the block's first empty line. The block must fill the member
    exactly: warcio checks digests only once it has read Content-Length bytes, so a
    Content-Length that overshoots would otherwise pass unverified."""
    block_start = raw.index(b"\r\n\r\n") + 4
    try:
        block_end = block_start + int(content_length or "")
    except ValueError:
        raise ValueError(f"bad WARC Content-Length {content_length!r}") from None
    if raw[block_end:] != b"\r\n\r\n":
        raise ValueError("WARC Content-Length does not match the record's size")
    head_end = raw.find(b"\r\n\r\n", block_start, block_end + 4)
    if head_end < 0:
        raise ValueError("the response record holds no complete HTTP head")
    stream = io.BytesIO(raw[block_start : head_end + 4])
    return _Latin1Parser([], verify=False).parse(stream)


def _original_headers(stored: list[tuple[str, str]]) -> dict[str, str]:
    """Undo the renaming: the added Content-Length goes, the originals get their names."""
    headers = {}
    for name, value in stored:
        lower = name.lower()
        if lower in TRANSPORT_HEADERS:
            continue
        if lower.startswith(ORIGINAL_PREFIX.lower()):
            original = name[len(ORIGINAL_PREFIX) :]
            if original.lower() in TRANSPORT_HEADERS:
                name = original
        headers[name] = value
    return headers
