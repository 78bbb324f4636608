"""Canonical URLs and ids: the basis of exactly-once."""

from __future__ import annotations

import pytest

from ingest import ids


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://News.Example.COM/a/b?id=3#top", "https://news.example.com/a/b?id=3"),
        ("https://news.example.com/a?utm_source=rss&utm_medium=feed", "https://news.example.com/a"),
        ("https://news.example.com:443/a?fbclid=xyz", "https://news.example.com/a"),
        ("https://news.example.com/a?b=2&a=1", "https://news.example.com/a?a=1&b=2"),
    ],
)
def test_equivalent_links_share_one_key(a: str, b: str) -> None:
    assert ids.url_key(a) == ids.url_key(b)


def test_different_articles_have_different_keys() -> None:
    assert ids.url_key("https://n.example/a?id=1") != ids.url_key("https://n.example/a?id=2")
    assert ids.url_key("https://n.example/a") != ids.url_key("https://other.example/a")


def test_article_id_is_stable_hex() -> None:
    value = ids.article_id("https://n.example/a")
    assert value == ids.article_id("https://n.example/a")
    assert len(value) == 32 and int(value, 16) >= 0


def test_run_key_keeps_safe_ids_and_disambiguates_unsafe_ones() -> None:
    assert ids.run_key("20261124T101010Z-abc123") == "20261124T101010Z-abc123"
    airflow = ids.run_key("scheduled__2026-11-24T10:00:00+00:00")
    assert ":" not in airflow and "+" not in airflow
    assert airflow != ids.run_key("scheduled__2026-11-24T10_00_00_00_00")
    with pytest.raises(ValueError):
        ids.run_key("")
