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
        ("https://n.example/a?sid=1&mc_cid=x&_ga=2&FBCLID=y", "https://n.example/a?sid=1"),
        ("https://n.example?p=1", "https://n.example/?p=1"),
    ],
)
def test_equivalent_links_share_one_key(a: str, b: str) -> None:
    assert ids.url_key(a) == ids.url_key(b)


def test_different_articles_have_different_keys() -> None:
    assert ids.url_key("https://n.example/a?id=1") != ids.url_key("https://n.example/a?id=2")
    assert ids.url_key("https://n.example/a") != ids.url_key("https://other.example/a")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://n.example/article.php?sid=123", "https://n.example/article.php?sid=124"),
        ("https://n.example/redir?to=https%3A%2F%2Fa.org%2F1", "https://n.example/redir?to=x"),
        ("https://n.example/news?source=abc", "https://n.example/news?source=abd"),
        ("https://n.example/a?q=", "https://n.example/a"),
    ],
)
def test_query_parameters_that_identify_a_page_are_kept(a: str, b: str) -> None:
    assert ids.url_key(a) != ids.url_key(b)
    assert "?" in ids.canonical_url(a)


def test_links_without_query_keep_their_earlier_ids() -> None:
    """Ids of committed articles must not move when the query rules change."""
    url = "https://News.Example.com:443/2025/12/a-story/?utm_source=rss#comments"
    assert ids.canonical_url(url) == "https://news.example.com/2025/12/a-story/"


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
    with pytest.raises(ValueError):
        ids.run_key("run\n1")


@pytest.mark.parametrize("run_id", ["..", ".", ".hidden", "a/../b", "../../etc", "a\\b", "..."])
def test_run_key_never_names_a_path_outside_its_run(run_id: str) -> None:
    key = ids.run_key(run_id)
    assert "/" not in key and "\\" not in key and ".." not in key
    assert not key.startswith(".")
    assert key != ids.run_key(run_id + "x")
