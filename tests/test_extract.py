"""Extraction quality on the demo site's pages, checked against golden files.

Runs the engine's own extraction (options included), so a change of trafilatura version or
of our options that drops body text or lets boilerplate in fails CI.
"""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.demo_site import load_site
from ingest.extract import ExtractError, extract_page, fingerprints
from ingest.http_client import decode_html

GOLDEN_FILES = sorted((Path(__file__).parent / "golden").glob("*.json"))
BASE = "http://127.0.0.1:8000"
MIN_RATIO = 0.95


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[bytes, str]]:
    responses = load_site().render(BASE, datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    return {path: (r.body, r.content_type) for path, r in responses.items()}


def test_there_are_golden_pages() -> None:
    assert len(GOLDEN_FILES) >= 15


@pytest.mark.parametrize("golden_file", GOLDEN_FILES, ids=lambda p: p.stem)
def test_golden_body(golden_file: Path, rendered: dict[str, tuple[bytes, str]]) -> None:
    golden = json.loads(golden_file.read_text("utf-8"))
    body, content_type = rendered[golden["path"].split("?")[0]]
    got = extract_page(decode_html(body, content_type), BASE + golden["path"])
    text = got["text"]
    ratio = difflib.SequenceMatcher(None, golden["body"], text, autojunk=False).ratio()
    assert ratio >= MIN_RATIO, f"{golden_file.stem}: similarity {ratio:.3f} < {MIN_RATIO}"
    for sentence in golden["must_contain"]:
        assert sentence in text
    page = decode_html(body, content_type).replace("&amp;", "&")
    for chrome in golden["must_not_contain"]:
        assert chrome in page, f"golden chrome {chrome!r} is not on the page: fix the golden file"
        assert chrome not in text
    assert got["title"] == golden["title"]
    assert got["word_count"] == len(text.split())


def test_page_without_article_is_an_extract_error() -> None:
    with pytest.raises(ExtractError) as err:
        extract_page("<html><body></body></html>", "https://n.example/x")
    assert err.value.reason == "no_text"


def test_fingerprints_exact_and_near_duplicates() -> None:
    text = " ".join(f"word{i} sentence{i % 7} clause{i % 13}" for i in range(300))
    sha, simhash = fingerprints(text)
    assert fingerprints("  " + text.replace(" ", "\n", 5) + " ") == (sha, simhash)
    near = text.replace("word5 ", "changed ", 1)
    other = " ".join(f"other{i} thing{i % 5}" for i in range(300))
    distance = lambda a, b: bin((a ^ b) & (2**64 - 1)).count("1")  # noqa: E731
    assert fingerprints(near)[0] != sha
    assert distance(fingerprints(near)[1], simhash) <= 6
    assert distance(fingerprints(other)[1], simhash) > 12
    assert -(2**63) <= simhash < 2**63


@pytest.mark.parametrize("seed", range(6))
def test_simhash_matches_trafilatura_bit_for_bit(seed: int) -> None:
    import random

    from trafilatura.deduplication import Simhash

    from ingest.extract import simhash

    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "Москва", "东京", "don't", "x", "2025"]
    text = " ".join(rng.choice(words) + str(rng.randint(0, 50)) for _ in range(rng.randint(0, 400)))
    assert simhash(text) == Simhash(text).hash
