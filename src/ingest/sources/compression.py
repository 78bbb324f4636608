"""Compressed sources (`.xml.gz` sitemaps, whatever their content type), bounded after
decompression like any other body."""

from __future__ import annotations

import zlib

from ingest.net import FetchError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(body: bytes) -> bool:
    return body[:2] == GZIP_MAGIC


def gunzip_limited(body: bytes, limit: int, url: str) -> bytes:
    """Decompress gzip (all members) to at most `limit` bytes.

    zlib's `max_length` stops each step at the limit, so a gzip bomb costs `limit` bytes of
    memory and a few milliseconds before it fails with `too_large`, like any oversized body.
    """
    out: list[bytes] = []
    size = 0
    data = body
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while not inflater.eof:
                # max_length is never 0 (which would mean "unlimited"): size <= limit here
                chunk = inflater.decompress(data, limit + 1 - size)
                size += len(chunk)
                if size > limit:
                    raise FetchError("too_large", f"{url} exceeds {limit} bytes (gunzipped)")
                out.append(chunk)
                data = inflater.unconsumed_tail
                if not chunk and not data:  # wants input there is none of
                    break
        except zlib.error as exc:
            raise FetchError("decode_error", f"{url}: bad gzip data: {exc}") from None
        if not inflater.eof:
            raise FetchError("decode_error", f"{url}: gzip data is truncated")
        data = inflater.unused_data
        if not is_gzip(data):  # trailing padding after the last member is ignored
            break
    return b"".join(out)
