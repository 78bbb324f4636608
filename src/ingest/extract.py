"""Body and metadata extraction with trafilatura, run in worker processes.

Everything CPU-bound per page (parsing, extraction, hashing, SimHash; and decoding, by the
pool's worker entry point) happens in worker processes so it spreads over all cores; the
run's own process only moves bytes and writes rows.

The body is chosen by `extract_page` (rules in the README, "Extraction"): trafilatura's
precision pass first; on a page whose result looks truncated, a recall-oriented second pass
or the publisher's JSON-LD `articleBody`; then the page's own lead paragraph when the
extraction dropped it, and lines that are plainly page furniture (cross-links, photo
credits, subscribe prompts) removed. Measured on a real-page corpus by
`bench/bench_extraction.py`; `tests/system/test_extraction_quality.py` pins the score.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import json
import re
from collections import Counter
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

import numpy as np
import trafilatura
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.deduplication import Simhash, sample_tokens
from trafilatura.utils import load_html

from ingest import trafilatura_speedups
from ingest.errors import ExtractError
from ingest.text import count_words

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

# The second pass on suspicious pages: trafilatura's balanced default. Metadata come from
# the first pass, so it skips them unless the first pass returned nothing at all.
FALLBACK_OPTIONS: dict[str, Any] = {
    key: value for key, value in EXTRACT_OPTIONS.items() if key != "favor_precision"
}

# When the precision pass is suspicious (all measured on the real-page corpus, see
# bench/README.md "Extraction quality"):
SHORT_WORDS = 200  # fewer words than a short news story
STRUCTURE_RATIO = 1.5  # the page's <article> paragraphs hold this much more text
# When the fallback is taken instead:
LONGER_RATIO = 1.2  # at least this many times the words of the precision pass
MIN_PROSE_SHARE = 0.5  # of the added characters, in sentence-like lines
MAX_REPEATED_SHARE = 0.5  # of the fallback's lines, repeated ones (widgets, PHP warnings)
# JSON-LD articleBody: at least this long (words) and this much longer than the extraction
JSON_LD_MIN_WORDS = 50
JSON_LD_RATIO = 1.5
JSON_LD_MAX_CHARS = 2_000_000  # per <script>: larger ones are not parsed
JSON_LD_MAX_SCRIPTS = 30
JSON_LD_MAX_DEPTH = 6  # @graph / mainEntity nesting followed
JSON_LD_MAX_NODES = 2_000
# A lead (standfirst) taken from the page's description: at least this many words
LEAD_MIN_WORDS = 12
LEAD_PROBE_CHARS = 50  # non-space characters compared at its start and at its end

_LANG_TEXT_RE = re.compile(
    r"<html[^>]*?\slang\s*=\s*[\"']?([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]+)?)", re.I
)


trafilatura_speedups.install()


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
    normalized = _norm(text)  # the same as collapsing r"\s+" and stripping, faster
    sha = hashlib.sha256(normalized.encode("utf-8")).hexdigest()
    value = simhash(normalized)
    if value >= 1 << 63:
        value -= 1 << 64
    return sha, value


# Lines that are page furniture wherever they appear, in the languages of our feeds. Each
# applies only to a line no longer than its limit: a real paragraph may mention a newsletter.
_FURNITURE: tuple[tuple[int, re.Pattern[str]], ...] = (
    # cross-links to other articles: "Read more: <headline>", "Lesen Sie auch: ..."
    (
        200,
        re.compile(
            r"^\W{0,3}(read more|read also|also read|see also|related( stories| articles)?:"
            r"|lesen sie (auch|hier|mehr)|auch lesen|mehr zum thema|weitere artikel"
            r"|zum weiterlesen|weiterlesen:|schon gelesen|auch interessant"
            r"|das könnte (dich|sie) auch interessieren|mehr themen|top-themen"
            r"|lea también|lee también|le puede interesar|vea también|notas relacionadas"
            r"|à lire aussi|a lire aussi|lire aussi|leggi anche)\b",
            re.I,
        ),
    ),
    # photo credits and copyright lines
    (
        120,
        re.compile(
            r"^\W{0,3}(©|\(?credits?:|\(?fotos?:|\(?photos?:|bild:|titelbild:|beitragsbild:"
            r"|bildquelle\s*:|crédits? photos?|image illustrative"
            r"|copyright\s*(:|©|\(c\)|\d{4}))",
            re.I,
        ),
    ),
    # subscribe / follow prompts
    (
        160,
        re.compile(
            r"\bnewsletter\b.{0,40}\b(abonnieren|anmelden|sign up|subscribe)"
            r"|\b(subscribe|sign up)\b.{0,30}"
            r"\b(now|today|newsletter|here|to our|to get|for the full)"
            r"|jetzt abonnieren|suscr[ií]bete|s[ií]guenos en|follow (us|the \w+) on",
            re.I,
        ),
    ),
)
_SENTENCE_END = tuple(".!?…\"“”»«')’:;)。！？」")
_TAG_RE = re.compile(r"<[A-Za-z/!][^>]*>")
_BLOCK_END_RE = re.compile(r"(?i)<br\s*/?>|</(p|div|h[1-6]|li|blockquote|tr)\s*>")
_ARTICLE_TYPES = {"blogposting", "liveblogposting", "report"}  # plus every "...Article"
_NESTED_KEYS = ("@graph", "mainEntity", "mainEntityOfPage")
_STRUCTURE = etree.XPath("//article//p | //*[@itemprop='articleBody']//p")
_INVISIBLE = ("script", "style", "noscript", "template")


@dataclass
class _Page:
    """What the page itself says about its article, from one lxml parse."""

    structure_chars: int  # text in <p> inside <article> / itemprop=articleBody
    json_ld_body: str  # longest clean articleBody of an article-type JSON-LD node
    tree: HtmlElement | None
    _visible: str | None = None

    @classmethod
    def read(cls, tree: HtmlElement | None) -> _Page:
        if tree is None:
            return cls(0, "", None)
        structure = sum(len(_norm(p.text_content())) for p in _STRUCTURE(tree))
        return cls(structure, _json_ld_body(tree), tree)

    def visible_text(self) -> str:
        """The body's text without scripts and styles, and without whitespace, since block
        elements join without a separator (lazy: only the lead rule needs it)."""
        if self._visible is None:
            body = self.tree.find("body") if self.tree is not None else None
            if body is None:
                self._visible = ""
            else:
                for element in list(body.iter(*_INVISIBLE)):
                    element.drop_tree()
                self._visible = _squash(body.text_content())
        return self._visible


def _norm(text: str) -> str:
    return " ".join(text.split())


def _squash(text: str) -> str:
    return "".join(text.split())


def _json_ld_body(tree: HtmlElement) -> str:
    """The longest usable `articleBody` in the page's JSON-LD, or "".

    Bounded work on hostile pages: at most JSON_LD_MAX_SCRIPTS scripts of at most
    JSON_LD_MAX_CHARS each, JSON_LD_MAX_DEPTH levels of @graph/mainEntity followed and
    JSON_LD_MAX_NODES nodes visited; a script that does not parse is skipped.
    """
    best = ""
    scripts = [
        s
        for s in tree.iter("script")
        if (s.get("type") or "").strip().lower() == "application/ld+json"
    ]
    for script in scripts[:JSON_LD_MAX_SCRIPTS]:
        raw = script.text or ""
        if not raw.strip() or len(raw) > JSON_LD_MAX_CHARS:
            continue
        try:
            data = json.loads(raw, strict=False)
        except (ValueError, RecursionError):
            continue
        for body in _article_bodies(data):
            text = _clean_body(body)
            if len(text) > len(best):
                best = text
    return best


def _article_bodies(data: Any) -> list[str]:
    found: list[str] = []
    stack: list[tuple[Any, int]] = [(data, 0)]
    visited = 0
    while stack and visited < JSON_LD_MAX_NODES:
        node, depth = stack.pop()
        visited += 1
        if isinstance(node, list):
            if depth < JSON_LD_MAX_DEPTH:
                stack.extend((item, depth + 1) for item in node[:JSON_LD_MAX_NODES])
            continue
        if not isinstance(node, dict):
            continue
        body = node.get("articleBody")
        if isinstance(body, str) and _is_article_type(node.get("@type")):
            found.append(body)
        if depth < JSON_LD_MAX_DEPTH:
            stack.extend((node[key], depth + 1) for key in _NESTED_KEYS if key in node)
    return found


def _is_article_type(value: Any) -> bool:
    names = value if isinstance(value, list) else [value]
    for name in names:
        if isinstance(name, str):
            short = name.rsplit("/", 1)[-1].rsplit(":", 1)[-1].lower()
            if short.endswith("article") or short in _ARTICLE_TYPES:
                return True
    return False


def _clean_body(body: str) -> str:
    """articleBody as plain text, one paragraph a line; "" unless it is clean text.

    Publishers put plain text, HTML, or entity-escaped HTML there: entities are decoded
    (twice, for the escaped kind) and simple markup becomes line breaks. Anything still
    looking like markup or a template is not used.
    """
    text = body[:JSON_LD_MAX_CHARS]
    for _ in range(2):
        if "&" in text:
            text = htmllib.unescape(text)
    if _TAG_RE.search(text):
        text = _TAG_RE.sub("", _BLOCK_END_RE.sub("\n", text))
    if _TAG_RE.search(text) or "{{" in text or "{%" in text:  # nested or broken markup
        return ""
    return "\n".join(line for line in map(_norm, text.splitlines()) if line)


def _lines(text: str) -> list[str]:
    return [line for line in (raw.strip() for raw in text.splitlines()) if line]


def _is_prose(line: str) -> bool:
    return line.endswith(_SENTENCE_END) and count_words(line) >= 8


def _fallback_is_better(precise: str, fallback: str) -> bool:
    """Take the recall-oriented text only when it is substantially longer and what it adds
    reads like article prose, not repeated widgets or a list of links."""
    if not fallback or count_words(fallback) < LONGER_RATIO * max(count_words(precise), 1):
        return False
    kept = set(_lines(precise))
    lines = _lines(fallback)
    added = [line for line in lines if line not in kept]
    added_chars = sum(map(len, added))
    if not added_chars:
        return False
    prose_chars = sum(len(line) for line in added if _is_prose(line))
    if prose_chars < MIN_PROSE_SHARE * added_chars:
        return False
    long_lines = [line for line in lines if len(line) > 20]
    repeated = sum(n for n in Counter(long_lines).values() if n > 1)
    return repeated < MAX_REPEATED_SHARE * max(len(long_lines), 1)


def _with_lead(text: str, description: str | None, page: _Page) -> str:
    """Put the page's lead back in front when the extraction dropped it.

    The lead (standfirst) often sits in the article <header> or a teaser-styled block that
    trafilatura's precision mode removes. The page's description is taken as that lead
    only when it is sentence-length, missing from the text, and printed in the page body
    (not just a <meta> tag), so a site-wide tagline or an unseen SEO summary is not added.
    """
    if not description:
        return text
    lead = _norm(description)
    if count_words(lead) < LEAD_MIN_WORDS:
        return text
    # probe its start and its end: descriptions are often cut ("…") or put a kicker first
    squashed = _squash(lead.rstrip(".…"))
    probes = {squashed[:LEAD_PROBE_CHARS], squashed[-LEAD_PROBE_CHARS:]}
    body, visible = _squash(text), page.visible_text()
    if any(p in body for p in probes) or not any(p in visible for p in probes):
        return text
    return f"{lead}\n{text}" if text else lead


def _drop_furniture(text: str) -> str:
    kept = [
        line
        for line in text.splitlines()
        if not any(
            len(stripped := line.strip()) <= limit and rx.search(stripped)
            for limit, rx in _FURNITURE
        )
    ]
    return "\n".join(kept).strip()


def _choose_body(html: str, url: str) -> tuple[Any, str, str]:
    """(trafilatura document or None, body text, path): see the module docstring.

    The page is parsed once: trafilatura works on its own copy of a tree it is given, so
    both passes and our own reading share one parse.
    """
    tree = load_html(html)
    source = tree if tree is not None else html  # not HTML: let trafilatura say so
    doc = trafilatura.bare_extraction(source, url=url, **EXTRACT_OPTIONS)
    precise = (doc.text or "").strip() if doc is not None else ""
    page = _Page.read(tree)
    text, path = precise, "precision"
    suspicious = (
        count_words(precise) < SHORT_WORDS
        or page.structure_chars > STRUCTURE_RATIO * len(precise)
        or len(page.json_ld_body) > JSON_LD_RATIO * len(precise)
    )
    if suspicious:
        options = FALLBACK_OPTIONS if doc is None else FALLBACK_OPTIONS | {"with_metadata": False}
        second = trafilatura.bare_extraction(source, url=url, **options)
        fallback = (second.text or "").strip() if second is not None else ""
        if _fallback_is_better(precise, fallback):
            text, path = fallback, "fallback"
            if doc is None:
                doc = second
        body = page.json_ld_body
        if (
            len(body) > JSON_LD_RATIO * len(precise)
            and len(body) >= 0.8 * len(text)
            and count_words(body) >= JSON_LD_MIN_WORDS
        ):
            text, path = body, "json_ld"
    if doc is not None:
        text = _with_lead(text, doc.description, page)
    return doc, _drop_furniture(text), path


# Bump when a change of ours changes what extraction produces for the same page: rows made
# by an older version are what `ingest reextract --where-extractor-older-than` selects.
RULES_VERSION = 2


def extractor_version() -> str:
    """What produced a row's extracted columns (stored in `extractor`)."""
    return f"newsflow-rules/{RULES_VERSION} trafilatura/{trafilatura.__version__}"


def rules_version_of(extractor: str | None) -> int:
    """The rules version named in an `extractor` value; 0 when unknown (older rows)."""
    if not extractor or not extractor.startswith("newsflow-rules/"):
        return 0
    head = extractor.split()[0].split("/", 1)[1]
    return int(head) if head.isdigit() else 0


def extract_page(html: str, url: str) -> dict[str, Any]:
    """Extract one page; raises ExtractError when no article body can be found.

    "extraction" in the result names the path that produced the body: "precision",
    "fallback" or "json_ld" (see _choose_body); the pipeline does not store it.
    """
    try:
        doc, text, path = _choose_body(html, url)
    except Exception as exc:  # trafilatura/lxml/json raise many types on hostile markup
        raise ExtractError("extract_failed", f"{type(exc).__name__}: {exc}") from None
    if not text:
        raise ExtractError("no_text", "no article body found")
    sha, simhash = fingerprints(text)
    return {
        "title": doc.title if doc is not None else None,
        "authors": _split(doc.author, ";,|") if doc is not None else [],
        "date": doc.date if doc is not None else None,
        "canonical": doc.url if doc is not None else None,
        "site_name": doc.sitename if doc is not None else None,
        "description": doc.description if doc is not None else None,
        "language": page_language(html),
        "categories": _split(doc.categories, ",;") if doc is not None else [],
        "tags": _split(doc.tags, ",;") if doc is not None else [],
        "image": doc.image if doc is not None else None,
        "text": text,
        "word_count": count_words(text),
        "content_sha256": sha,
        "simhash": simhash,
        "extraction": path,
        "extractor": extractor_version(),
    }
