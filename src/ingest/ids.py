"""Stable identifiers: canonical URLs and the hashes built on them."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from courlan import normalize_url

_RUN_KEY_RE = re.compile(r"[^A-Za-z0-9._-]")

# Query parameters that only say how a reader arrived, never which page they read. Every
# other parameter identifies the page (`article.php?sid=123`) and is kept. Matched on the
# lower-cased name; documented in the README.
TRACKING_PREFIXES = ("utm_", "mtm_", "pk_", "mc_", "_hs", "oly_", "vero_", "at_")
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid",
        "twclid", "ttclid", "igshid", "li_fat_id", "mkt_tok", "_ga", "_gl", "xtor",
        "ocid", "cmpid", "ncid", "sr_share", "s_cid", "wt_mc", "wt_zmc",
    }
)  # fmt: skip


def is_tracking_param(name: str) -> bool:
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


@lru_cache(maxsize=4096)  # a run asks about each link 2-3 times (select, normalize, keys)
def canonical_url(url: str) -> str:
    """Lower-case scheme and host, default port and fragment dropped, tracking parameters
    removed and the rest of the query sorted.

    courlan (trafilatura's own URL library) normalizes scheme, host and path; the query is
    ours because courlan's strict mode keeps only a short whitelist of parameters, which
    would collapse `article.php?sid=1` and `?sid=2` into one article.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        base = normalize_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))
    except (ValueError, AttributeError):
        return url
    params = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking_param(k)
    ]
    if not params:
        return base
    if not urlsplit(base).path:
        base += "/"
    return f"{base}?{urlencode(sorted(params))}"


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
    """A run id made safe for object keys and file names (Airflow ids contain ':' and '+').

    Safe ids are kept as they are; anything else (path separators, `..`, a leading dot) is
    replaced and disambiguated by a hash, so no run id can name a key outside its run.
    """
    if not run_id or len(run_id) > 200:
        raise ValueError("run id must be 1 to 200 characters")
    if not run_id.isprintable():
        raise ValueError("run id must not contain control characters")
    safe = _RUN_KEY_RE.sub("_", run_id)
    if safe[0] == "." or ".." in safe:
        safe = "_" + safe.replace(".", "_")
    if safe != run_id:
        safe += "-" + hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return safe
