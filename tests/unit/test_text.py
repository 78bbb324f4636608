"""XML-safe text: what XML 1.0 forbids never reaches a stored row or an emitted file."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from ingest.config import Settings
from ingest.text import clean_value, count_words, xml_safe


@pytest.mark.parametrize(
    "bad", ["\x00", "\x1b", "\x08", "\x0b", "\x0c", "\ud800", "\ufffe", "\uffff"]
)
def test_forbidden_characters_are_dropped(bad: str) -> None:
    cleaned = xml_safe(f"a{bad}b")
    assert cleaned == "ab"
    ET.fromstring(f"<t>{cleaned}</t>")  # parses


def test_allowed_text_is_unchanged() -> None:
    text = "Tab\tLF\nCR\r Ünïcödé 日本語 emoji 🎉 \x85 \ue000"
    assert xml_safe(text) == text


def test_clean_value_handles_lists_and_leaves_other_types() -> None:
    assert clean_value(["a\x1b", 3, None]) == ["a", 3, None]
    assert clean_value(7) == 7 and clean_value(None) is None


# --------------------------------------------------------------------------- word counts

# Paragraphs in each script, counted by hand: Han/kana per character, Thai per five code
# points (rounded up), everything else per whitespace token with a letter or digit.
JAPANESE = "東京都は十日、新しい防災計画を発表した。"  # 18 Han/kana characters, 2 marks
CHINESE = "北京市政府今天发布了新的交通规划。"  # 16 Han characters
KOREAN = "서울시는 10일 새로운 교통 계획을 발표했다."  # 6 words between spaces
THAI = "รัฐบาลไทยประกาศแผนใหม่"  # 22 code points -> 5 words
ENGLISH = "The city council — after a long debate — approved the 2025 budget."  # 11
GERMAN = "Die Straßenbahn fährt ab Montag über die neue Brücke in Köln-Deutz."  # 11


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (JAPANESE, 18),
        (CHINESE, 16),
        (KOREAN, 6),
        (THAI, 5),
        (ENGLISH, 11),
        (GERMAN, 11),
        ("", 0),
        ("  — | · ", 0),  # punctuation alone is not a word
    ],
    ids=["japanese", "chinese", "korean", "thai", "english", "german", "empty", "punct"],
)
def test_count_words_per_script(text: str, expected: int) -> None:
    assert count_words(text) == expected


def test_count_words_mixed_cjk_and_latin() -> None:
    # 東京 (2) + 2020 (1) + 大会 (2) + の (1) + IOC (1) + 会長 (2) + Thomas Bach (2)
    assert count_words("東京2020大会のIOC会長 Thomas Bach") == 11
    assert count_words(f"{JAPANESE} {ENGLISH}") == 18 + 11


def test_a_real_length_japanese_article_passes_the_minimum() -> None:
    """An ~850-character Japanese article was rejected as "18 words" by str.split."""
    article = "\n".join([JAPANESE * 5] * 9)  # 900 characters in 9 paragraphs
    assert len(article.split()) == 9  # what str.split saw: one "word" a paragraph
    assert count_words(article) == 18 * 5 * 9
    assert count_words(article) >= Settings().min_words


def test_thai_counts_by_characters_not_spaces() -> None:
    # Thai spaces separate phrases, not words: 66 code points are 14 words, not 3
    assert count_words(f"{THAI} {THAI} {THAI}") == 14
    assert count_words("ไทย") == 1  # a short word still counts


def test_hangul_counts_whitespace_words() -> None:
    assert count_words("대한민국") == 1  # one word of four syllables
