"""Stable identifiers: canonical URLs and the hashes built on them."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from courlan import normalize_url

_RUN_KEY_RE = re.compile(r"[^A-Za-z0-9._-]")


def canonical_url(url: str) -> str:
    """Lower-case scheme and host, default port, fragment and tracking parameters dropped.

    courlan (trafilatura's own URL library) does the normalization; `strict` removes
    utm_*, fbclid, gclid and similar tracking parameters.
    """
    try:
        return normalize_url(url.strip(), strict=True)
    except (ValueError, AttributeError):
        return url.strip()


def url_key(url: str) -> str:
    """Dedup key of a link before fetching: hash of its canonical form."""
    return hashlib.sha256(canonical_url(url).encode("utf-8")).hexdigest()[:32]


def article_id(canonical: str) -> str:
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def same_site(a: str, b: str) -> bool:
    """Whether two URLs are on the same host, ignoring a leading www."""
    ha = (urlsplit(a).hostname or "").removeprefix("www.")
    hb = (urlsplit(b).hostname or "").removeprefix("www.")
    return bool(ha) and ha == hb


def run_key(run_id: str) -> str:
    """A run id made safe for object keys and file names (Airflow ids contain ':' and '+')."""
    if not run_id or len(run_id) > 200:
        raise ValueError("run id must be 1 to 200 characters")
    safe = _RUN_KEY_RE.sub("_", run_id)
    if safe != run_id:
        safe += "-" + hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return safe
