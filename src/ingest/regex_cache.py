"""Compiled `regex` patterns kept on disk, so a process need not parse them again.

dateparser, which htmldate calls for date expressions, compiles about 850 patterns for its
~200 locales the first time a process reads a date. The `regex` module parses a pattern in
Python: about 1.3 s of CPU in every extraction process. What pickling a compiled pattern
stores (`_pickled_data`: the compiled code) recompiles in C in microseconds, which is how
`regex` itself unpickles patterns. `patterns_from(path)` serves `regex.compile` from such a
file for the duration of a block and adds what it had to compile to the file.

The file is keyed by the versions its content depends on (`regex`, Python) and carries a
checksum: one that is missing, stale, truncated or corrupt is ignored (and rewritten), never
trusted. Only plain calls are cached: str patterns without named lists or locale flags.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex
from regex import _regex

log = logging.getLogger(__name__)

_MAGIC = b"newsflow-regex-cache-1\n"
_DIGEST_SIZE = 32
_UNCACHEABLE = regex.LOCALE | regex.DEBUG
_patch_lock = threading.Lock()

Table = dict[tuple[str, int, int], tuple[Any, ...]]


def cache_file(directory: Path) -> Path:
    """Where the patterns of this `regex` and this Python live under `directory`."""
    python = "".join(map(str, sys.version_info[:2]))
    return directory / f"regex-{regex.__version__}-{sys.implementation.name}{python}.marshal"


def default_directory() -> Path:
    """$XDG_CACHE_HOME/newsflow, else ~/.cache/newsflow: the user's cache, which anyone may
    delete at any time."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "newsflow"


def load(path: Path) -> Table:
    """The table in `path`, or {} when there is none or it cannot be trusted."""
    try:
        blob = path.read_bytes()
    except OSError:
        return {}
    head, digest = blob[: len(_MAGIC)], blob[len(_MAGIC) : len(_MAGIC) + _DIGEST_SIZE]
    payload = blob[len(_MAGIC) + _DIGEST_SIZE :]
    if head != _MAGIC or hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest() != digest:
        log.info("ignoring the regex cache %s: not written by this version or corrupt", path)
        return {}
    try:
        table = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        log.info("ignoring the regex cache %s: unreadable", path)
        return {}
    return table if isinstance(table, dict) else {}


def save(path: Path, table: Table) -> bool:
    """Write `table` to `path` atomically; False (logged) when the directory is not
    writable: the cache only saves time, so its absence is never an error."""
    payload = marshal.dumps(table)
    digest = hashlib.blake2b(payload, digest_size=_DIGEST_SIZE).digest()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_MAGIC + digest + payload)
            os.replace(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.info("not writing the regex cache %s: %s", path, exc)
        return False
    return True


@dataclass
class Usage:
    """What a `patterns_from` block did: patterns served from the file, and compiled."""

    served: int = 0
    compiled: int = 0


@contextmanager
def patterns_from(path: Path) -> Iterator[Usage]:
    """Within the block, `regex.compile` returns patterns from `path` when it has them and
    compiles (and records) the rest; on leaving, new patterns are added to the file.

    Meant for a process's warm-up, before it runs threads that compile patterns: the patch
    is process-wide while the block runs.
    """
    table = load(path)
    usage = Usage()
    original = regex.compile
    version = int(regex.DEFAULT_VERSION)

    def compile(
        pattern: Any,
        flags: int = 0,
        ignore_unused: bool = False,
        cache_pattern: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        cacheable = isinstance(pattern, str) and not kwargs and not flags & _UNCACHEABLE
        if not cacheable:
            return original(pattern, flags, ignore_unused, cache_pattern, **kwargs)
        key = (pattern, int(flags), version)
        data = table.get(key)
        if data is not None and data[0] == pattern:
            usage.served += 1
            return _regex.compile(*data)
        compiled = original(pattern, flags, ignore_unused, cache_pattern)
        table[key] = compiled._pickled_data
        usage.compiled += 1
        return compiled

    with _patch_lock:
        regex.compile = compile
        try:
            yield usage
        finally:
            regex.compile = original
    if usage.compiled:
        save(path, table)
