"""Load what trafilatura's libraries load lazily, before a worker's first page, cheaply.

dateparser loads its ~200 locales and compiles their patterns the first time htmldate
hands it a date expression (about 1.4 s of CPU per worker), and justext reads every
stoplist the first time it meets a page in an unknown language. A worker does both before
its first page, with dateparser's patterns served from the compile cache
(`ingest.regex_cache`): about 0.3 s. Installs run `python -m ingest.warmup` once to write
the cache; without one, the first warm-up writes it.

Nothing here changes what extraction produces: it fills the same caches the first page
would, with the same patterns.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ingest import regex_cache

log = logging.getLogger(__name__)

# No locale reads this as a date, so dateparser tries (and loads) every one of them.
_NO_DATE = "qzx 12"
_warm = False


def cache_path() -> Path:
    """The compile cache of this `regex` and this Python, in the user's cache directory."""
    return regex_cache.cache_file(regex_cache.default_directory())


def warm_extractor() -> regex_cache.Usage | None:
    """Warm this process's date parser and stoplists, once; None when already warm or when
    it failed (which only costs the time it would have saved)."""
    global _warm
    if _warm:
        return None
    _warm = True
    started = time.perf_counter()
    path = cache_path()
    try:
        from htmldate.extractors import get_external_parser
        from trafilatura.external import jt_stoplist_init

        with regex_cache.patterns_from(path) as usage:
            get_external_parser().get_date_data(_NO_DATE)
        jt_stoplist_init()
    except Exception as exc:  # an upgraded library moved something: extraction still works
        log.warning("extractor warm-up skipped: %s: %s", type(exc).__name__, exc)
        return None
    log.debug(
        "extractor warmed in %.2fs: %d patterns from %s, %d compiled",
        time.perf_counter() - started,
        usage.served,
        path,
        usage.compiled,
    )
    return usage


if __name__ == "__main__":  # installs run it once, so a fresh install's first run is warm
    done = warm_extractor()
    if done is not None:
        print(f"date patterns: {done.served} cached, {done.compiled} compiled ({cache_path()})")
