"""Text hygiene shared by every writer: what we store and emit must be valid XML 1.0 text.

A publisher's `&#x1b;` survives HTML and feed parsing as a real control character; stored
as-is it makes any XML built from it (the Atom index, a warehouse's XML export) invalid.
"""

from __future__ import annotations

import re
from typing import Any

# Everything XML 1.0 (section 2.2) does not allow in a document: C0 controls other than
# tab, LF and CR; lone surrogates; U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str) -> str:
    """The text without the characters XML 1.0 forbids (dropped, not replaced)."""
    return _NOT_XML_CHAR.sub("", text)


def clean_value(value: Any) -> Any:
    """xml_safe applied to a string or to the strings of a list; other values unchanged."""
    if isinstance(value, str):
        return xml_safe(value)
    if isinstance(value, list):
        return [xml_safe(v) if isinstance(v, str) else v for v in value]
    return value


# Scripts written without spaces between words. Han ideographs (CJK unified, extensions
# A-I, compatibility) and kana count one word per character; Thai, Lao, Myanmar and Khmer
# count one word per five characters (see count_words). Hangul is not listed: Korean puts
# spaces between words.
_PER_CHAR = re.compile(
    "["
    "\u3005\u3006\u3007\u303b"  # iteration and closing marks, ideographic zero
    "\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9d"  # hiragana, katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han: extension A, unified, compatibility
    "\U00020000-\U0003134f"  # Han: extensions B-H
    "]"
)
_NO_SPACE_SCRIPT = re.compile(
    "["
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f\ua9e0-\ua9ff\uaa60-\uaa7f"  # Myanmar and its extensions
    "\u1780-\u17ff\u19e0-\u19ff"  # Khmer and Khmer symbols
    "]"
)
# a whitespace-separated token holding a letter or digit (any script): one match per token
_WORD_TOKEN = re.compile(r"\S*[^\W_]\S*")
CHARS_PER_SEA_WORD = 5


def count_words(text: str) -> int:
    """Words in `text`, for every script, so the minimum-length rule means the same thing
    for a Japanese article as for an English one.

    - Han and kana: one word per character. Chinese and Japanese put no spaces between
      words, so splitting on whitespace counts a whole paragraph as one "word". A real
      segmenter (jieba, MeCab) is a large dependency we do not have; per character
      over-counts (a Chinese word is ~1.5 characters, a Japanese one ~2-3), which errs on
      the side of keeping articles: an 850-character Japanese article is ~850 "words", not 18.
    - Hangul: whitespace words. Korean separates words (eojeol) with spaces, so whitespace
      already counts it like English; per syllable would inflate it about threefold.
    - Thai, Lao, Myanmar, Khmer: no spaces between words (spaces mark phrases), and no
      segmenter here either; one word per CHARS_PER_SEA_WORD code points (rounded up).
      Thai averages about five code points per word once vowel and tone marks are counted,
      and the neighbouring scripts are similar.
    - Everything else: whitespace-separated tokens holding at least one letter or digit, so
      a lone dash or "|" is not a word. A token that mixes scripts ("東京2020") counts each
      part by its own rule.
    """
    per_char = len(_PER_CHAR.findall(text))
    sea_chars = len(_NO_SPACE_SCRIPT.findall(text))
    rest = _NO_SPACE_SCRIPT.sub(" ", _PER_CHAR.sub(" ", text))
    spaced = len(_WORD_TOKEN.findall(rest))
    return per_char + spaced + -(-sea_chars // CHARS_PER_SEA_WORD)
