"""The daily index's text rules, pure: summaries shortened, the publisher's name, language
tags."""

from __future__ import annotations

from ingest import index


def test_summary_prefers_the_articles_summary_and_is_shortened() -> None:
    assert index.shorten("x " * 400).endswith("…")
    assert len(index.shorten("word " * 400)) <= index.SUMMARY_CHARS
    assert index.shorten("short one") == "short one"


def test_publisher_falls_back_to_feed_name_then_host() -> None:
    url = "https://news.example.org/a/1"
    assert index.publisher({"site_name": " The  Times ", "source": "t", "canonical_url": url}) == (
        "The Times"
    )
    assert index.publisher({"site_name": None, "source": "times", "canonical_url": url}) == "times"
    assert index.publisher({"site_name": " ", "source": "", "canonical_url": url}) == (
        "news.example.org"
    )
    assert index.language_tag("en_GB") == "en-GB" and index.language_tag("english!") == ""
