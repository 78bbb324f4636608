"""The run, as stages a reader can follow from `Run` (runner): the context (who the run
is), the crawl (due sources, thread pools, progress, stopping), selection (which entries to
fetch), the page stage (fetch → extract → route → archive), the ledger (what everything
became), the sinks (parts and raw archive) and the shards (split, commit)."""

from ingest.run.context import RunContext, new_run_id
from ingest.run.runner import Run, run
from ingest.run.shards import commit_run, previous_report, shard_key, split_feeds

__all__ = [
    "Run",
    "RunContext",
    "commit_run",
    "new_run_id",
    "previous_report",
    "run",
    "shard_key",
    "split_feeds",
]
