"""What the extractor pool's forkserver loads before it forks a worker (its only importer
is `multiprocessing`'s preload): the extractor, warmed (see `ingest.warmup`)."""

import ingest.extract  # noqa: F401
from ingest.warmup import warm_extractor

warm_extractor()
