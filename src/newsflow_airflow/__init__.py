"""The Airflow glue shared by the newsflow DAGs, kept apart from the engine (src/ingest
never imports Airflow): settings (the store, the feeds file, S3 credentials), the assets,
the task callbacks, the DAG defaults and the engine's settings in a task. DAG files
import it as `nf`."""

from newsflow_airflow.announce import articles_event
from newsflow_airflow.assets import ARTICLES, INDEX
from newsflow_airflow.callbacks import (
    emit_metrics,
    engine_errors,
    on_failure,
    report_committed,
    task_fields,
)
from newsflow_airflow.defaults import default_args
from newsflow_airflow.process import engine_settings
from newsflow_airflow.settings import (
    DEFAULT_STORE,
    feeds_file,
    setting,
    store,
    store_uri,
    threshold,
    webhook,
)

__all__ = [
    "ARTICLES",
    "DEFAULT_STORE",
    "INDEX",
    "articles_event",
    "default_args",
    "emit_metrics",
    "engine_errors",
    "engine_settings",
    "feeds_file",
    "on_failure",
    "report_committed",
    "setting",
    "store",
    "store_uri",
    "task_fields",
    "threshold",
    "webhook",
]
