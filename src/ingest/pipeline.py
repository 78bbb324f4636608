"""Kept for one release: the run moved to `ingest.run` (stages in a package of its own).
Import from there."""

from ingest.run import Run, commit_run, new_run_id, previous_report, run, shard_key, split_feeds

__all__ = ["Run", "commit_run", "new_run_id", "previous_report", "run", "shard_key", "split_feeds"]
