"""newsflow ingestion engine: feeds -> pages -> trafilatura -> Parquet on object storage.

Nothing in this package imports Airflow; the DAGs in dags/ call into it.
"""

__version__ = "0.1.0"
