"""Settings (env `INGEST_*`, overridable by flags) and the validated feeds file.

Errors here are the user's to fix, so they are `ConfigError` with one line that names
the variable, flag or feed entry at fault.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from ingest import __version__


class ConfigError(Exception):
    """A setting, flag or feeds file the user must fix."""


DEFAULT_USER_AGENT = f"newsflow/{__version__} (+https://github.com/newsflow/newsflow)"


def _parse_networks(
    value: str | list[str],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    items = value.split(",") if isinstance(value, str) else value
    nets = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(f"not a network in CIDR form: {item!r} (e.g. 127.0.0.0/8)") from None
    return tuple(nets)


@dataclass(frozen=True)
class Settings:
    """Every knob of a run. Defaults are production-safe; tests loosen them explicitly."""

    user_agent: str = DEFAULT_USER_AGENT
    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    max_bytes: int = 10 * 1024 * 1024
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_redirects: int = 5
    http_retries: int = 2
    per_host_concurrency: int = 2
    per_host_delay: float = 0.0
    respect_robots: bool = True
    fetch_concurrency: int = 16
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    extract_timeout: float = 60.0
    # forkserver: safest for the CLI. fork: for hosts whose main module must not be
    # re-imported by workers (Airflow's task runner); the pool is then forked before any
    # fetch thread starts.
    mp_start_method: str = "forkserver"
    min_words: int = 25
    part_rows: int = 5_000
    progress: bool = True

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Read INGEST_<FIELD> variables, then apply non-None overrides (CLI flags)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"INGEST_{f.name.upper()}")
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, f.type, raw, f"INGEST_{f.name.upper()}")
        for key, value in overrides.items():
            if value is None:
                continue
            if key == "allow_networks":
                value = _parse_networks(value)
            values[key] = value
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        positive = ("max_bytes", "connect_timeout", "read_timeout", "total_timeout")
        positive += ("per_host_concurrency", "fetch_concurrency", "workers", "part_rows")
        positive += ("extract_timeout",)
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {name} must be > 0, got {getattr(self, name)!r}")
        if self.mp_start_method not in ("forkserver", "fork", "spawn"):
            raise ConfigError(
                f"setting mp_start_method must be forkserver, fork or spawn, "
                f"got {self.mp_start_method!r}"
            )
        for name in ("max_redirects", "http_retries", "per_host_delay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"setting {name} must be >= 0, got {getattr(self, name)!r}")

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _coerce(name: str, type_name: Any, raw: str, origin: str) -> Any:
    type_name = str(type_name)
    try:
        if name == "allow_networks":
            return _parse_networks(raw)
        if type_name == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
        return raw
    except ValueError:
        raise ConfigError(f"{origin}={raw!r} is not a valid {type_name}") from None


# ---------------------------------------------------------------------------- feeds file

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Feed:
    name: str
    url: str
    enabled: bool = True
    max_entries: int | None = None
    max_age_days: float | None = None
    language: str | None = None


_FEED_KEYS = {f.name for f in fields(Feed)}


def load_feeds(path: str | Path) -> list[Feed]:
    """Parse and validate a feeds file; one clear ConfigError names the bad entry."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"feeds file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read feeds file {path}: {exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"feeds file {path} is not valid YAML{where}: {problem}") from None
    return parse_feeds(doc, str(path))


def parse_feeds(doc: Any, origin: str = "feeds file") -> list[Feed]:
    if not isinstance(doc, dict) or "feeds" not in doc:
        raise ConfigError(f"{origin}: expected a mapping with a 'feeds:' list at the top")
    entries = doc["feeds"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: 'feeds' must be a non-empty list")
    feeds: list[Feed] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(entries, start=1):
        label = f"{origin}: feed #{i}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({raw['name']!r})"
        if not isinstance(raw, dict):
            raise ConfigError(f"{label}: expected a mapping with 'name' and 'url', got {raw!r}")
        unknown = sorted(set(raw) - _FEED_KEYS)
        if unknown:
            raise ConfigError(
                f"{label}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(_FEED_KEYS))}"
            )
        for key in ("name", "url"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise ConfigError(f"{label}: '{key}' is required and must be a string")
        name, url = raw["name"].strip(), raw["url"].strip()
        if not _NAME_RE.match(name):
            raise ConfigError(f"{label}: name must match {_NAME_RE.pattern} (it names state files)")
        if not re.match(r"^https?://[^/\s]+", url, re.I):
            raise ConfigError(f"{label}: url must be an absolute http(s) URL, got {url!r}")
        if name in seen:
            raise ConfigError(f"{label}: duplicate name, already used by feed #{seen[name]}")
        seen[name] = i
        kwargs: dict[str, Any] = {"name": name, "url": url}
        if "enabled" in raw:
            if not isinstance(raw["enabled"], bool):
                raise ConfigError(f"{label}: 'enabled' must be true or false")
            kwargs["enabled"] = raw["enabled"]
        if raw.get("max_entries") is not None:
            if not isinstance(raw["max_entries"], int) or raw["max_entries"] <= 0:
                raise ConfigError(f"{label}: 'max_entries' must be a positive integer")
            kwargs["max_entries"] = raw["max_entries"]
        if raw.get("max_age_days") is not None:
            if not isinstance(raw["max_age_days"], int | float) or raw["max_age_days"] <= 0:
                raise ConfigError(f"{label}: 'max_age_days' must be a positive number")
            kwargs["max_age_days"] = float(raw["max_age_days"])
        if raw.get("language") is not None:
            if not isinstance(raw["language"], str):
                raise ConfigError(f"{label}: 'language' must be a string such as 'en'")
            kwargs["language"] = raw["language"]
        feeds.append(Feed(**kwargs))
    return feeds
