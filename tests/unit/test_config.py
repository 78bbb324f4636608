"""Settings and feeds-file validation: every mistake names what to fix."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.config import ConfigError, Settings, load_feeds


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "feeds.yaml"
    path.write_text(text, "utf-8")
    return path


def test_valid_feeds_file_with_optional_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n"
        "  - name: world\n    url: https://news.example/world.xml\n"
        "  - name: econ\n    url: https://news.example/econ.xml\n"
        "    max_entries: 5\n    max_age_days: 2\n    enabled: false\n    language: de\n",
    )
    feeds = load_feeds(path)
    assert [f.name for f in feeds] == ["world", "econ"]
    assert feeds[1].max_entries == 5 and feeds[1].max_age_days == 2.0
    assert feeds[1].enabled is False and feeds[1].language == "de"
    assert feeds[0].kind == feeds[1].kind == "auto"  # told by the content


def test_kind_says_what_a_source_serves(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n"
        "  - name: news\n    url: https://news.example/news-sitemap.xml\n    kind: sitemap\n"
        "  - name: json\n    url: https://news.example/feed.json\n    kind: feed\n"
        "  - name: any\n    url: https://news.example/x\n    kind: auto\n",
    )
    assert [f.kind for f in load_feeds(path)] == ["sitemap", "feed", "auto"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feeds: [", "not valid YAML at line"),
        ("- a\n- b\n", "expected a mapping with a 'feeds:' list"),
        ("feeds: []\n", "non-empty list"),
        ("feeds:\n  - name: a\n", "feed #1 ('a'): 'url' is required"),
        ("feeds:\n  - url: https://x.example/f\n", "feed #1: 'name' is required"),
        (
            "feeds:\n  - name: a\n    url: https://x.example/a\n  - name: b\n    ulr: x\n",
            "feed #2 ('b'): unknown key(s) 'ulr'",
        ),
        (
            "feeds:\n  - name: a\n    url: https://x.example/a\n"
            "  - name: a\n    url: https://x.example/b\n",
            "feed #2 ('a'): duplicate name, already used by feed #1",
        ),
        ("feeds:\n  - name: a\n    url: ftp://x.example/a\n", "absolute http(s) URL"),
        ("feeds:\n  - name: a b\n    url: https://x.example/a\n", "name must match"),
        (
            "feeds:\n  - name: a\n    url: https://x.example/a\n    max_entries: -1\n",
            "'max_entries' must be a positive integer",
        ),
        ("feeds:\n  - just-a-string\n", "feed #1: expected a mapping"),
        (
            "feeds:\n  - name: a\n    url: https://x.example/a\n    kind: sitemaps\n",
            "feed #1 ('a'): 'kind' must be one of auto, feed, sitemap, got 'sitemaps'",
        ),
        (
            "feeds:\n  - name: a\n    url: https://x.example/a\n    kind: [sitemap]\n",
            "feed #1 ('a'): 'kind' must be one of auto, feed, sitemap, got ['sitemap']",
        ),
        (
            "feeds:\n  - name: a\n    url: https://x.example/a\n    kind: Sitemap\n",
            "'kind' must be one of auto, feed, sitemap, got 'Sitemap'",
        ),
    ],
)
def test_bad_feeds_file_names_the_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_feeds(write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_feeds_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="feeds file not found"):
        load_feeds(tmp_path / "nope.yaml")


def test_settings_from_env_and_overrides() -> None:
    env = {
        "INGEST_MAX_BYTES": "1024",
        "INGEST_ALLOW_NETWORKS": "127.0.0.0/8, 10.0.0.0/8",
        "INGEST_RESPECT_ROBOTS": "no",
    }
    settings = Settings.from_env(env, workers=3)
    assert settings.max_bytes == 1024
    assert settings.respect_robots is False
    assert settings.workers == 3
    assert ipaddress.ip_network("10.0.0.0/8") in settings.allow_networks


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"INGEST_MAX_BYTES": "lots"}, "INGEST_MAX_BYTES='lots' is not a valid int"),
        ({"INGEST_ALLOW_NETWORKS": "localhost"}, "not a network in CIDR form"),
        ({"INGEST_TOTAL_TIMEOUT": "0"}, "total_timeout must be > 0"),
        ({"INGEST_RESPECT_ROBOTS": "maybe"}, "not a valid bool"),
    ],
)
def test_bad_settings_are_config_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


# ------------------------------------------------------------------ hostile feeds files

FEED = "feeds:\n  - name: a\n    url: https://x.example/a\n"


def config_error(path: Path) -> str:
    """The message load_feeds gives: one short line, whatever the file holds."""
    with pytest.raises(ConfigError) as err:
        load_feeds(path)
    message = str(err.value)
    assert "\n" not in message
    assert len(message) <= 300 + len(str(path)), message[:1000]
    return message.replace(str(path), "F")


def test_yaml_alias_bomb_is_refused_within_a_memory_limit(tmp_path: Path) -> None:
    # "Billion laughs": 9**9 'lol's from ~350 bytes. The message used to repr() the
    # expanded entry (gigabytes); under a 1 GB address-space limit that is a MemoryError.
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*lines, "feeds: [*i]"]) + "\n", "utf-8")
    code = (
        "import resource, sys\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
        "limit = 1 << 30 if hard == resource.RLIM_INFINITY else min(hard, 1 << 30)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (limit, hard))\n"
        "from ingest.config import ConfigError, load_feeds\n"
        "try:\n"
        "    load_feeds(sys.argv[1])\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == f"feeds file {path}: YAML aliases (*a) are not allowed, at line 2\n"


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    text = "feeds:\n  - &one {name: a, url: 'https://x.example/a'}\n  - *one\n"
    message = config_error(write(tmp_path, text))
    assert message == "feeds file F: YAML aliases (*one) are not allowed, at line 3"


@pytest.mark.parametrize(
    "text",
    [
        "feeds: " + "[" * 100_000 + "]" * 100_000,
        "feeds: " + "{a: " * 100_000 + "1" + "}" * 100_000,
        "feeds:\n" + "".join("  " * i + "-\n" for i in range(60)),
    ],
    ids=["flow-sequences", "flow-mappings", "block-sequences"],
)
def test_deep_yaml_nesting_is_refused(tmp_path: Path, text: str) -> None:
    message = config_error(write(tmp_path, text))
    assert message.startswith("feeds file F: YAML nested deeper than 50 levels, at line ")


def test_oversized_feeds_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes(FEED.encode() + b"#" * (1 << 20) + b"\n")  # valid YAML, just big
    assert config_error(path) == "feeds file F is larger than 1 MiB"


LOL = "[" + ",".join(["[" + ",".join(["lol"] * 300) + "]"] * 300) + "]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"feeds:\n  - name: {'n' * 200_000}\n    url: https://x.example/a\n", "name must match"),
        (f"feeds:\n  - name: a\n    url: https://x.example/{'a' * 200_000}\n", "longer than 2048"),
        (f"feeds:\n  - name: a\n    url: ftp://x.example/{'a' * 200_000}\n", "absolute http(s)"),
        (f"{FEED}    language: {'e' * 200_000}\n", "'language' must be a language code"),
        (f"{FEED}    max_entries: 0x{'f' * 5_000}\n", "got <int>"),  # too long for str()
        (FEED + "".join(f"    k{i}: x\n" for i in range(5_000)), "'k0', 'k1', 'k2', ...;"),
        (f"feeds:\n  - {LOL}\n", "got [['lol', 'lol', 'lol', 'lol', ...], ['lol', "),
    ],
    ids=["name", "url", "not-http", "language", "huge-int", "many-keys", "non-mapping"],
)
def test_messages_never_carry_unbounded_input(tmp_path: Path, text: str, message: str) -> None:
    assert message in config_error(write(tmp_path, text))


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf", "0", "-1", "36501", "true", "'3'"])
def test_max_age_days_must_be_finite_positive_and_bounded(tmp_path: Path, value: str) -> None:
    message = config_error(write(tmp_path, f"{FEED}    max_age_days: {value}\n"))
    assert "F: feed #1 ('a'): 'max_age_days' must be a positive number up to 36500, got " in message


@pytest.mark.parametrize("value", ["true", "false", "0", "100001", "1.5", "'5'"])
def test_max_entries_refuses_booleans_and_huge_values(tmp_path: Path, value: str) -> None:
    message = config_error(write(tmp_path, f"{FEED}    max_entries: {value}\n"))
    assert (
        "F: feed #1 ('a'): 'max_entries' must be a positive integer up to 100000, got " in message
    )


def test_numeric_limits_are_inclusive(tmp_path: Path) -> None:
    (feed,) = load_feeds(
        write(tmp_path, f"{FEED}    max_entries: 100000\n    max_age_days: 36500\n")
    )
    assert feed.max_entries == 100_000 and feed.max_age_days == 36_500.0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://[::1", "url is malformed (Invalid IPv6 URL), got 'https://[::1'"),
        ("http://[zz]/f", "url is malformed ("),
        ("https://x.example:99999/f", "url is malformed (Port out of range 0-65535)"),
        ("https://x.example:0/f", "url port must be 1-65535"),
        ("https://:80/f", "url has no host"),
        ("http://[fe80::1%25eth0]/f", "url host must not contain '%' (IPv6 zone ids are refused)"),
        ("https://x.example/a b", "url must not contain whitespace or control characters"),
        ('"https://x.exa\\tmple/a"', "url must not contain whitespace or control characters"),
        ('"https://x.example/\\r\\na"', "url must not contain whitespace or control characters"),
        ('"https://x.example/\\0a"', "url must not contain whitespace or control characters"),
        ('"https://x.example/\\u202ea"', "url must not contain whitespace or control characters"),
    ],
)
def test_bad_feed_urls_name_the_entry(tmp_path: Path, url: str, message: str) -> None:
    text = f"feeds:\n  - name: a\n    url: https://x.example/ok\n  - name: b\n    url: {url}\n"
    assert config_error(write(tmp_path, text)).startswith(f"F: feed #2 ('b'): {message}")


@pytest.mark.parametrize(
    "url", ["http://[::1]:8080/f.xml", "https://münchen.example/f", "HTTPS://X.example/f?a=1"]
)
def test_unusual_but_valid_feed_urls_are_kept(tmp_path: Path, url: str) -> None:
    (feed,) = load_feeds(write(tmp_path, f"feeds:\n  - name: a\n    url: {url}\n"))
    assert feed.url == url


def test_feed_names_clash_ignoring_case(tmp_path: Path) -> None:
    text = f"{FEED}  - name: b\n    url: https://x.example/b\n  - name: A\n    url: https://x.example/c\n"
    assert config_error(write(tmp_path, text)) == (
        "F: feed #3 ('A'): duplicate name, already used by feed #1 ('a') "
        "(names are compared ignoring case)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2001-99-99", "at line 4, column 15: cannot read '2001-99-99': month must be in 1..12"),
        ("!!bool maybe", "at line 4, column 15: cannot read 'maybe'"),
        ("!!timestamp soon", "at line 4, column 15: cannot read 'soon'"),
        ("1" * 5_000, "at line 4, column 15: cannot read '1111"),  # past the int digit limit
    ],
)
def test_unreadable_yaml_values_are_config_errors(tmp_path: Path, value: str, message: str) -> None:
    text = f"{FEED}    language: {value}\n"
    assert config_error(write(tmp_path, text)).startswith(
        f"feeds file F is not valid YAML {message}"
    )


def test_keys_of_mixed_types_are_reported_in_file_order(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, f"{FEED}    b: x\n    1: y\n"))
    assert message.startswith("F: feed #1 ('a'): unknown key(s) 'b', 1; allowed: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"feeds:\n  - name: \xff\xfe\n", "cannot read feeds file F: 'utf-8' codec can't decode"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cannot read feeds file F: 'utf-8' codec"),
        (b"feeds:\x00\x01\x02", "feeds file F is not valid YAML: unacceptable character #x0000"),
    ],
)
def test_non_utf8_or_binary_feeds_file(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_bytes(data)
    assert config_error(path).startswith(message)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_settings_refuse_non_finite_numbers(value: str) -> None:
    with pytest.raises(ConfigError, match="total_timeout must be a finite number"):
        Settings.from_env({"INGEST_TOTAL_TIMEOUT": value})
