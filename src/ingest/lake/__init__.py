"""The lake: staged parts, the Delta tables, committed keys and the commit protocol.

`parts` stages a run's rows, `tables` opens the Delta tables, `keys` answers "was this
committed before?" per key, `commit` makes a run visible exactly once, `maintain` keeps
the tables compact and `migrate` converts a store of the earlier manifest layout.
"""

from ingest.lake.commit import REPORTS, CommitRequest, CommitResult, Lake, report_key
from ingest.lake.keys import KeyIndex
from ingest.lake.parts import STAGING, PartInfo, PartWriter, write_parquet
from ingest.lake.tables import ARTICLES, REJECTS, open_table, read_committed

__all__ = [
    "ARTICLES",
    "REJECTS",
    "REPORTS",
    "STAGING",
    "CommitRequest",
    "CommitResult",
    "KeyIndex",
    "Lake",
    "PartInfo",
    "PartWriter",
    "open_table",
    "read_committed",
    "report_key",
    "write_parquet",
]
