"""The Prefect settings every Fearless process shares, set before Prefect is imported.

Imports only the settings, so a command that merely reads the server (`fearless status`)
pays nothing for the code that starts processes.
"""

from __future__ import annotations

import os

from fearless.settings import PROJECT_ROOT, Settings


def prefect_env(settings: Settings) -> dict[str, str]:
    """Prefect settings shared by the server, the worker and every flow run process."""
    paths = settings.paths
    return {
        "PREFECT_HOME": str(paths.prefect_home),
        "PREFECT_API_URL": settings.api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": str(settings.worker_query_s),
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_LOCAL_STORAGE_PATH": str(paths.prefect_home / "storage"),
        "PREFECT_LOGGING_LEVEL": "INFO",
        "FEARLESS_STATE_DIR": str(settings.state_dir),
        "FEARLESS_SERVER_PORT": str(settings.server_port),
        "FEARLESS_SERVER_HOST": settings.server_host,
        "FEARLESS_WORK_POOL": settings.work_pool,
        "FEARLESS_PROJECT_DIR": str(PROJECT_ROOT),
    }


def use_server(settings: Settings) -> None:
    """Point this process's Prefect client at the configured server (before importing prefect)."""
    for key, value in prefect_env(settings).items():
        if key == "PREFECT_API_URL" and os.environ.get("PREFECT_API_URL"):
            continue
        os.environ.setdefault(key, value)
