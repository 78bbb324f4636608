"""The assets the DAGs produce and consume: the store's tables, named by the store's URI
(ingest.settings.store_uri, the same one the tasks write)."""

from __future__ import annotations

from airflow.sdk import Asset

from newsflow_airflow.settings import store_uri

ARTICLES = Asset(name="newsflow_articles", uri=f"{store_uri()}/articles/")
INDEX = Asset(name="newsflow_index", uri=f"{store_uri()}/index/")
