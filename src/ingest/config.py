"""Settings (env `INGEST_*`, overridable by flags) and the validated feeds file.

Errors here are the user's to fix, so they are `ConfigError` with one line that names
the variable, flag or feed entry at fault.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import reprlib
import unicodedata
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from ingest import __version__
from ingest.polling import PollBounds


class ConfigError(Exception):
    """A setting, flag or feeds file the user must fix."""


DEFAULT_USER_AGENT = f"newsflow/{__version__} (+https://github.com/newsflow/newsflow)"

MAX_SHOWN = 80  # characters of a user's value quoted in a message

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, MAX_SHOWN, MAX_SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4


def _clip(text: str, limit: int = MAX_SHOWN) -> str:
    """Text for a one-line message: input may be megabytes long or hold line breaks."""
    text = "".join(c if c.isprintable() else " " for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: object) -> str:
    """repr() for messages, bounded in size and depth whatever the value is."""
    try:
        return _clip(_REPR.repr(value))
    except Exception:  # e.g. an int past sys.get_int_max_str_digits()
        return f"<{type(value).__name__}>"


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
            raise ConfigError(
                f"not a network in CIDR form: {_show(item)} (e.g. 127.0.0.0/8)"
            ) from None
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
    # The run lease (ingest.lease): how long a silent holder keeps the store, and how
    # long a second run waits for it before stopping with "store is busy".
    lease_ttl: float = 120.0
    lease_wait: float = 0.0
    archive_raw: bool = True  # keep every fetched page in WARC files under raw/
    # adaptive polling (seconds): see ingest.polling
    poll_min_interval: float = 600.0
    poll_max_interval: float = 21600.0
    poll_slack: float = 120.0
    # update rechecks (committed links whose source says they changed) per source per run;
    # the rest wait for the next run (ingest.polling.next_state)
    max_rechecks: int = 100
    # WebSub push (ingest.websub): the receiver's public base URL, which hubs call back
    # (<base>/websub/<id>); unset, no source is subscribed. A run drains the inbox unless
    # drain_inbox is off; push_only drains it without polling (the news_push DAG).
    websub_callback: str | None = None
    drain_inbox: bool = True
    push_only: bool = False

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
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"setting {f.name} must be a finite number, got {value!r}")
        positive = ("max_bytes", "connect_timeout", "read_timeout", "total_timeout")
        positive += ("per_host_concurrency", "fetch_concurrency", "workers", "part_rows")
        positive += ("extract_timeout", "lease_ttl")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"setting {name} must be > 0, got {_show(getattr(self, name))}")
        if self.mp_start_method not in ("forkserver", "fork", "spawn"):
            raise ConfigError(
                f"setting mp_start_method must be forkserver, fork or spawn, "
                f"got {_show(self.mp_start_method)}"
            )
        non_negative = ("max_redirects", "http_retries", "per_host_delay", "lease_wait")
        for name in (*non_negative, "max_rechecks"):
            if getattr(self, name) < 0:
                raise ConfigError(f"setting {name} must be >= 0, got {_show(getattr(self, name))}")
        if not 0 <= self.poll_min_interval <= self.poll_max_interval:
            raise ConfigError(
                "settings need 0 <= poll_min_interval <= poll_max_interval, got "
                f"{_show(self.poll_min_interval)} and {_show(self.poll_max_interval)}"
            )
        if self.poll_slack < 0:
            raise ConfigError(f"setting poll_slack must be >= 0, got {_show(self.poll_slack)}")

    def poll_bounds(self) -> PollBounds:
        return PollBounds(self.poll_min_interval, self.poll_max_interval, self.poll_slack)

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
        raise ConfigError(f"{origin}={_show(raw)} is not a valid {type_name}") from None


# ---------------------------------------------------------------------------- feeds file

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_LANGUAGE_RE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,4}")

# A feeds file is a short list. The limits keep a hostile or broken one from costing more
# than a few seconds and a few hundred MB (pure-Python YAML needs ~350 bytes per byte of
# `[],[],...`), and keep values sane for timedelta, object names and log lines.
MAX_FEEDS_FILE_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 50
MAX_URL_CHARS = 2048
MAX_ENTRIES = 100_000
MAX_AGE_DAYS = 36_500

# What a source's URL serves: `feed` (RSS, Atom, RDF or JSON Feed), `sitemap` (a urlset,
# Google News sitemap or sitemap index), or `auto`: decided by the content itself.
FEED_KINDS = ("auto", "feed", "sitemap")


@dataclass(frozen=True)
class Feed:
    name: str
    url: str
    enabled: bool = True
    max_entries: int | None = None
    max_age_days: float | None = None
    language: str | None = None
    kind: str = "auto"
    hub: str | None = None  # WebSub hub to subscribe at, over the one the source announces


_FEED_KEYS = {f.name for f in fields(Feed)}


class _FeedsLoader(yaml.SafeLoader):
    """SafeLoader without aliases and with bounded nesting; a feeds file needs neither.

    Aliases let a few hundred bytes expand to gigabytes ("billion laughs"), and deep
    nesting overflows the recursive composer and constructor.
    """

    def __init__(self, text: str, origin: str) -> None:
        super().__init__(text)
        self._origin = origin
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            alias = _clip(event.anchor or "", 40)
            raise ConfigError(
                f"{self._origin}: YAML aliases (*{alias}) are not allowed, at line {line}"
            )
        if self._depth >= MAX_YAML_DEPTH:
            raise ConfigError(
                f"{self._origin}: YAML nested deeper than {MAX_YAML_DEPTH} levels, at line {line}"
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Scalar constructors raise plain errors (`2001-99-99`, `!!bool maybe`, 5000-digit
        ints); report them like any other YAML error, with the line."""
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            what = _show(node.value) if isinstance(node, yaml.ScalarNode) else "value"
            problem = f"cannot read {what}: {_clip(str(exc))}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None


def _load_yaml(text: str, origin: str) -> Any:
    loader = _FeedsLoader(text, origin)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def load_feeds(path: str | Path) -> list[Feed]:
    """Parse and validate a feeds file; one clear ConfigError names the bad entry."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FEEDS_FILE_BYTES + 1)  # not stat(): pipes and /dev files lie
    except FileNotFoundError:
        raise ConfigError(f"feeds file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read feeds file {path}: {exc}") from None
    if len(data) > MAX_FEEDS_FILE_BYTES:
        raise ConfigError(f"feeds file {path} is larger than {MAX_FEEDS_FILE_BYTES >> 20} MiB")
    try:
        doc = _load_yaml(data.decode("utf-8"), f"feeds file {path}")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read feeds file {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"feeds file {path} is not valid YAML{where}: {_clip(problem, 160)}"
        ) from None
    return parse_feeds(doc, str(path))


def _url_problem(url: str) -> str | None:
    """Why the fetcher could not use this URL; found here, the run never starts with it."""
    if not re.match(r"^https?://[^/\s]+", url, re.I):
        return "url must be an absolute http(s) URL"
    if len(url) > MAX_URL_CHARS:
        return f"url is longer than {MAX_URL_CHARS} characters"
    if any(unicodedata.category(c)[0] in "CZ" for c in url):  # urlsplit drops some silently
        return "url must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        return f"url is malformed ({_clip(str(exc))})"
    if not host:
        return "url has no host"
    if "%" in host:
        return "url host must not contain '%' (IPv6 zone ids are refused)"
    if port == 0:
        return "url port must be 1-65535"
    return None


def _bounded(label: str, key: str, raw: dict[Any, Any], kind: Any, limit: int) -> Any:
    """raw[key] if a number of `kind` in (0, limit]. bool is an int, so it is refused by
    name; the chained comparison also refuses NaN and the infinities."""
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value <= limit:
        what = "a positive integer" if kind is int else "a positive number"
        raise ConfigError(f"{label}: '{key}' must be {what} up to {limit}, got {_show(value)}")
    return value


def parse_feeds(doc: Any, origin: str = "feeds file") -> list[Feed]:
    """Validate a loaded feeds document; messages quote values only through _show()."""
    if not isinstance(doc, dict) or "feeds" not in doc:
        raise ConfigError(f"{origin}: expected a mapping with a 'feeds:' list at the top")
    entries = doc["feeds"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: 'feeds' must be a non-empty list")
    feeds: list[Feed] = []
    seen: dict[str, tuple[int, str]] = {}  # casefolded name -> (feed number, name)
    for i, raw in enumerate(entries, start=1):
        label = f"{origin}: feed #{i}"
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            label += f" ({_show(raw['name'])})"
        feed = _parse_feed(raw, label)
        # Names become state object names: `a` and `A` clash on case-insensitive stores.
        folded = feed.name.casefold()
        if folded in seen:
            number, other = seen[folded]
            why = "" if other == feed.name else " (names are compared ignoring case)"
            raise ConfigError(
                f"{label}: duplicate name, already used by feed #{number} ({_show(other)}){why}"
            )
        seen[folded] = (i, feed.name)
        feeds.append(feed)
    return feeds


def _parse_feed(raw: Any, label: str) -> Feed:
    """One entry of the feeds list: required keys first, then the optional ones."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: expected a mapping with 'name' and 'url', got {_show(raw)}")
    unknown = [k for k in raw if k not in _FEED_KEYS]  # keys may be of mixed types
    if unknown:
        more = ", ..." if len(unknown) > 3 else ""
        raise ConfigError(
            f"{label}: unknown key(s) {', '.join(map(_show, unknown[:3]))}{more}; "
            f"allowed: {', '.join(sorted(_FEED_KEYS))}"
        )
    for key in ("name", "url"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"{label}: '{key}' is required and must be a string")
    name, url = raw["name"].strip(), raw["url"].strip()
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(f"{label}: name must match ^{_NAME_RE.pattern}$ (it names state files)")
    problem = _url_problem(url)
    if problem:
        raise ConfigError(f"{label}: {problem}, got {_show(url)}")
    return Feed(name=name, url=url, **_feed_options(raw, label))


def _feed_options(raw: dict[str, Any], label: str) -> dict[str, Any]:
    """The optional keys of a feed entry that are set, validated."""
    options: dict[str, Any] = {}
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise ConfigError(f"{label}: 'enabled' must be true or false")
        options["enabled"] = raw["enabled"]
    if raw.get("max_entries") is not None:
        options["max_entries"] = _bounded(label, "max_entries", raw, int, MAX_ENTRIES)
    if raw.get("max_age_days") is not None:
        days = _bounded(label, "max_age_days", raw, int | float, MAX_AGE_DAYS)
        options["max_age_days"] = float(days)
    language = raw.get("language")
    if language is not None:
        if not isinstance(language, str) or not _LANGUAGE_RE.fullmatch(language):
            raise ConfigError(
                f"{label}: 'language' must be a language code such as 'en' or 'pt-BR', "
                f"got {_show(language)}"
            )
        options["language"] = language
    kind = raw.get("kind")
    if kind is not None:
        if not isinstance(kind, str) or kind not in FEED_KINDS:
            raise ConfigError(
                f"{label}: 'kind' must be one of {', '.join(FEED_KINDS)}, got {_show(kind)}"
            )
        options["kind"] = kind
    hub = raw.get("hub")
    if hub is not None:
        problem = _url_problem(hub.strip()) if isinstance(hub, str) else "must be a string"
        if problem:
            raise ConfigError(f"{label}: 'hub' {problem.removeprefix('url ')}, got {_show(hub)}")
        options["hub"] = hub.strip()
    return options
