"""Body and metadata extraction with trafilatura, run in worker processes.

Everything CPU-bound per page (parsing, extraction, hashing, SimHash) happens here so it
spreads over all cores; the parent only moves strings and writes rows.
"""

from __future__ import annotations

import hashlib
import re
from hashlib import blake2b
from typing import Any

import numpy as np
import trafilatura
from trafilatura.deduplication import Simhash, sample_tokens

EXTRACT_OPTIONS: dict[str, Any] = {
    "with_metadata": True,
    "include_comments": False,
    "include_tables": True,
    "favor_precision": True,
    "deduplicate": False,
    "date_extraction_params": {
        "extensive_search": True,
        "original_date": True,
        "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    },
}

_LANG_TEXT_RE = re.compile(
    r"<html[^>]*?\slang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)", re.I
)
_WS_RE = re.compile(r"\s+")


class ExtractError(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # survive the trip back from a worker process
        return (ExtractError, (self.reason, self.detail))


def _split(value: str | list[str] | None, seps: str) -> list[str]:
    if not value:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        for piece in re.split(f"[{re.escape(seps)}]", item):
            piece = piece.strip()
            if piece and piece not in out:
                out.append(piece)
    return out


def page_language(html: str) -> str | None:
    match = _LANG_TEXT_RE.search(html[:20_000])
    return match.group(1).lower().replace("_", "-") if match else None


def simhash(text: str) -> int:
    """trafilatura's 64-bit Charikar SimHash, bit for bit, with the bit counting vectorized.

    Same tokens (`sample_tokens`), same per-token BLAKE2b hash, same majority rule as
    `trafilatura.deduplication.Simhash`; numpy does the 64 x tokens counting that dominates
    its cost (a test checks both agree).
    """
    tokens = sample_tokens(text, 64)
    if not tokens:
        return Simhash(text).hash
    digests = b"".join(blake2b(t.encode(), digest_size=8).digest() for t in tokens)
    # big-endian bytes reversed per token -> column i holds bit i of each token's hash
    octets = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 8)[:, ::-1]
    bits = np.unpackbits(octets, axis=1, bitorder="little")
    majority = (2 * bits.sum(axis=0, dtype=np.int64)) >= len(tokens)
    return int.from_bytes(np.packbits(majority, bitorder="little").tobytes(), "little")


def fingerprints(text: str) -> tuple[str, int]:
    """Exact-copy hash and 64-bit SimHash (as signed int64 for Parquet and SQL engines)."""
    normalized = _WS_RE.sub(" ", text).strip()
    sha = hashlib.sha256(normalized.encode("utf-8")).hexdigest()
    value = simhash(normalized)
    if value >= 1 << 63:
        value -= 1 << 64
    return sha, value


def extract_page(html: str, url: str) -> dict[str, Any]:
    """Extract one page; raises ExtractError when no article body can be found."""
    try:
        doc = trafilatura.bare_extraction(html, url=url, **EXTRACT_OPTIONS)
    except Exception as exc:  # trafilatura/lxml raise many types on hostile markup
        raise ExtractError("extract_failed", f"{type(exc).__name__}: {exc}") from None
    if doc is None or not (doc.text or "").strip():
        raise ExtractError("no_text", "no article body found")
    text = doc.text.strip()
    sha, simhash = fingerprints(text)
    return {
        "title": doc.title,
        "authors": _split(doc.author, ";,|"),
        "date": doc.date,
        "canonical": doc.url,
        "site_name": doc.sitename,
        "description": doc.description,
        "language": page_language(html),
        "categories": _split(doc.categories, ",;"),
        "tags": _split(doc.tags, ",;"),
        "image": doc.image,
        "text": text,
        "word_count": len(text.split()),
        "content_sha256": sha,
        "simhash": simhash,
    }
