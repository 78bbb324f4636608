"""Settings and feeds-file validation: every mistake names what to fix."""

from __future__ import annotations

import ipaddress
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
