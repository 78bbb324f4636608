"""Sources: where entries come from. Each kind of source is one module (rss, jsonfeed,
sitemap) that turns a document into the shared model (FeedEntry, PollResult); `detect`
says which module reads a document and `poll` fetches one source. The source modules
never import each other, and nothing here imports the run, the CLI or Airflow.
"""

from ingest.sources.detect import parse_source
from ingest.sources.model import FUTURE_TOLERANCE, FeedEntry, PollResult, SitemapRef
from ingest.sources.poll import poll

__all__ = [
    "FUTURE_TOLERANCE",
    "FeedEntry",
    "PollResult",
    "SitemapRef",
    "parse_source",
    "poll",
]
