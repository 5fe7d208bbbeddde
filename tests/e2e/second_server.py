"""A second embedded server of its own (state dir, port, pool, database), beside the session's
shared one, for tests of what the shared one cannot change: its database, its workers, its
pool's limit, a restart. A plain context manager, so fault tests can use it too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import _free_port


@contextmanager
def pointed_at(settings) -> Iterator[None]:
    """This process's Prefect client, and the `prefect deploy` it runs, talk to `settings`'
    server while inside (Prefect reads its settings once, so both are changed)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = settings.api_url
    try:
        with temporary_settings({PREFECT_API_URL: settings.api_url}):
            yield
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


@contextmanager
def second_server(state_dir: Path, *, deploy: bool = True, **settings_fields) -> Iterator:
    """Start a server (with its workers, and PostgreSQL where `database="postgres"`), deploy
    the flows to it, and yield its services; `server down` on the way out, whatever happened."""
    from fearless.composition import build_services
    from fearless.platform.deploy import deploy as apply
    from fearless.platform.server import server_down, server_up
    from fearless.settings import Settings

    fields = {"server_port": _free_port(), "work_pool": "fearless-second", **settings_fields}
    settings = Settings(state_dir=state_dir, **fields)
    services = build_services(settings)
    try:
        with pointed_at(settings):
            server_up(settings, timeout_s=300)  # PostgreSQL and migrations: slow on a busy host
            if deploy:
                apply(settings)
            yield services
    finally:
        server_down(settings, services)
