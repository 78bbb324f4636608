"""
### news_maintenance

Keeps the `articles` and `rejects` Delta tables cheap to read: compacts the small files
that every ingest run adds, vacuums files that no table version of the retention window
(`retention_hours`, a week by default) still uses, checkpoints the logs, drops staging of
runs that never committed and expires old run-report files. Runs daily at 03:15 UTC.

**When it fails.** Every step is a table transaction or deletes only what no reader needs,
so a failed or killed run changes nothing a reader counts: clear the task to run it again.
It is safe while `news_ingest` runs. A failure here is the store's (reachability,
permissions): check the `newsflow_s3` connection.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

import newsflow_airflow as nf

log = logging.getLogger("newsflow")
DEFAULT_ARGS = nf.default_args(timeout=timedelta(hours=2))

# One place for each Param's default: the Params and the task read the same value.
DEFAULTS: dict[str, Any] = {
    "retention_hours": 168,
    "staging_days": 2,
    "report_days": 90,
    "raw_days": None,
}


@dag(
    dag_id="news_maintenance",
    description="Compacts, vacuums and checkpoints the tables; drops abandoned staging",
    schedule=os.environ.get("NEWSFLOW_MAINTENANCE_SCHEDULE", "15 3 * * *"),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsflow", "maintenance"],
    doc_md=__doc__,
    params={
        "retention_hours": Param(
            DEFAULTS["retention_hours"],
            type="integer",
            minimum=1,
            description="Vacuum keeps files younger than this.",
        ),
        "staging_days": Param(
            DEFAULTS["staging_days"],
            type="number",
            minimum=0,
            description="Drop staging of uncommitted runs after.",
        ),
        "report_days": Param(
            DEFAULTS["report_days"], type="number", minimum=0, description="Keep run reports."
        ),
        "raw_days": Param(
            DEFAULTS["raw_days"],
            type=["null", "number"],
            minimum=0,
            description="Delete raw WARC files older than this many days (empty: keep).",
        ),
    },
)
def news_maintenance() -> None:
    @task(doc_md="Compaction, vacuum, checkpoints and clean-up; logs what it did.")
    def maintain(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from dataclasses import asdict

        from ingest.lake.maintain import maintain as run_maintenance

        given = {k: v for k, v in (params or {}).items() if v is not None}
        values = {**DEFAULTS, **given}
        raw_days = values["raw_days"]
        with nf.engine_errors():
            result = run_maintenance(
                nf.store(),
                retention_hours=int(values["retention_hours"]),
                staging_days=float(values["staging_days"]),
                report_days=float(values["report_days"]),
                raw_days=None if raw_days is None else float(raw_days),
            )
        log.info("%s", result.summary())
        return asdict(result)

    maintain()


news_maintenance()
