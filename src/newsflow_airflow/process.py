"""The task process the engine runs in: Airflow's task runner, not a process of its own."""

from __future__ import annotations

from ingest.config import Settings


def engine_settings() -> Settings:
    """The engine's settings (INGEST_* variables) for a task that extracts pages, with the
    fork start method: Airflow's task runner is the main module, which a forkserver's or
    spawned worker would import again."""
    return Settings.from_env(progress=False, mp_start_method="fork")
