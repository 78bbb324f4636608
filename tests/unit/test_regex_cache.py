"""The on-disk compile cache serves the same patterns `regex` compiles, and a file that
cannot be trusted is ignored, never used."""

from __future__ import annotations

from pathlib import Path

import pytest
import regex

from ingest import regex_cache

PATTERNS = [
    (r"(?<=\A|\W|_)(janvier|février|mars)(?=\Z|\W|_)", regex.I | regex.U),
    (r"(.*?(?:\G|\W|_|\d))(mai|juin)(?=\Z|\W|_|\d)", regex.U | regex.I | regex.DOTALL),
    (r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$", 0),
]
SAMPLES = ["3 février 2024", "le 12 mai", "12.03.2021", "janvierx", "x mars y", ""]


def _compile_all() -> list[regex.Pattern]:
    return [regex.compile(p, f) for p, f in PATTERNS]


def _behaviour(patterns: list[regex.Pattern]) -> list[list[object]]:
    return [
        [(m.span(), m.groups()) if (m := p.search(s)) else None for s in SAMPLES] for p in patterns
    ]


def test_second_block_serves_what_the_first_compiled(tmp_path: Path) -> None:
    path = regex_cache.cache_file(tmp_path)
    with regex_cache.patterns_from(path) as first:
        fresh = _compile_all()
    assert (first.served, first.compiled) == (0, len(PATTERNS))
    assert path.exists()

    with regex_cache.patterns_from(path) as second:
        cached = _compile_all()
    assert (second.served, second.compiled) == (len(PATTERNS), 0)
    assert [p._pickled_data for p in cached] == [p._pickled_data for p in fresh]
    assert [(p.pattern, p.flags) for p in cached] == [(p.pattern, p.flags) for p in fresh]
    assert _behaviour(cached) == _behaviour(fresh)


def test_compile_is_restored_after_the_block_even_on_error(tmp_path: Path) -> None:
    original = regex.compile
    with pytest.raises(RuntimeError), regex_cache.patterns_from(regex_cache.cache_file(tmp_path)):
        assert regex.compile is not original
        raise RuntimeError("warm-up failed")
    assert regex.compile is original


def test_uncacheable_calls_compile_as_usual_and_are_not_stored(tmp_path: Path) -> None:
    path = regex_cache.cache_file(tmp_path)
    with regex_cache.patterns_from(path) as usage:
        named = regex.compile(r"\L<words>", words=["alpha", "beta"])
        raw = regex.compile(rb"\d+")
    assert named.search("x beta y").group() == "beta"
    assert raw.search(b"ab 42").group() == b"42"
    assert (usage.served, usage.compiled) == (0, 0)
    assert not path.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda blob: blob[:-10],  # truncated
        lambda blob: blob[:-1] + bytes([blob[-1] ^ 1]),  # one bit flipped
        lambda blob: b"newsflow-regex-cache-0\n" + blob[23:],  # another format
        lambda blob: b"",
    ],
    ids=["truncated", "bit-flip", "other-format", "empty"],
)
def test_a_damaged_file_is_ignored_and_rewritten(tmp_path: Path, damage) -> None:
    path = regex_cache.cache_file(tmp_path)
    with regex_cache.patterns_from(path):
        fresh = _compile_all()
    path.write_bytes(damage(path.read_bytes()))
    assert regex_cache.load(path) == {}

    with regex_cache.patterns_from(path) as usage:
        again = _compile_all()
    assert (usage.served, usage.compiled) == (0, len(PATTERNS))
    assert _behaviour(again) == _behaviour(fresh)
    assert len(regex_cache.load(path)) == len(PATTERNS)  # whole again


def test_an_entry_for_another_pattern_is_not_served(tmp_path: Path) -> None:
    """The checksum guards the file; each entry must also name the pattern it compiles."""
    path = regex_cache.cache_file(tmp_path)
    pattern, flags = PATTERNS[0]
    other = regex.compile(r"nothing\s+alike", flags)
    key = (pattern, int(flags), int(regex.DEFAULT_VERSION))
    assert regex_cache.save(path, {key: other._pickled_data})
    with regex_cache.patterns_from(path) as usage:
        got = regex.compile(pattern, flags)
    assert got.pattern == pattern
    assert (usage.served, usage.compiled) == (0, 1)


def test_an_unwritable_directory_costs_nothing_but_the_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would be")
    path = regex_cache.cache_file(blocker / "newsflow")
    with regex_cache.patterns_from(path) as usage:
        patterns = _compile_all()
    assert usage.compiled == len(PATTERNS)
    assert patterns[2].match("12.03.2021").groups() == ("12", "03", "2021")
    assert not regex_cache.save(path, {})
    assert regex_cache.load(path) == {}


def test_file_name_names_the_versions_it_depends_on(tmp_path: Path) -> None:
    name = regex_cache.cache_file(tmp_path).name
    assert regex.__version__ in name
    assert name.endswith(".marshal")


def test_default_directory_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert regex_cache.default_directory() == tmp_path / "newsflow"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert regex_cache.default_directory() == tmp_path / "home" / ".cache" / "newsflow"
