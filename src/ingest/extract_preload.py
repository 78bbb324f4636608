"""What the extraction pool's forkserver imports before it forks any worker.

Importing this module imports the extractor and fills the caches that every worker would
otherwise fill on its own, then inherits for free (copy-on-write): the first time
htmldate hands a date expression to dateparser, dateparser tries every one of its ~200
locales and compiles their patterns, about 2 s of CPU per process. Done once here, while
the run's own process is still starting up, instead of once in each worker on whichever
page first needs it. A failure here only costs that saving: the forkserver must start.
"""

from __future__ import annotations

import logging

import ingest.extract  # noqa: F401  (the point: workers start with it imported)

log = logging.getLogger(__name__)


def warm_up() -> None:
    """Make dateparser try (and compile) every locale once, as htmldate's parser."""
    try:
        from htmldate.extractors import get_external_parser

        get_external_parser().get_date_data("newsflow 0 warm-up")  # matches no locale
    except Exception:  # a newer htmldate or dateparser: no saving, nothing broken
        log.debug("extraction warm-up skipped", exc_info=True)


warm_up()
