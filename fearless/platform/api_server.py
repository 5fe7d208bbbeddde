"""`python -m fearless.platform.api_server`: the embedded Prefect server (its API, UI and
services, as `prefect server start` runs them) with one route more, the read-only report
route of `fearless.platform.reports`, so reports are reached on the host and port a person
already opens the UI on. Every request addressed to a Host name it does not know is refused
first (`fearless.platform.hosts`), a change SQLite refused as busy is tried again before its
answer leaves (`fearless.platform.busy_retry`), and a work pool's concurrency limit holds however
many workers poll it (`fearless.platform.pool_limit`). Before it serves, each Fearless slot is
recounted from its leases (`fearless.platform.slot_recount`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fearless.platform.busy_retry import (
    BusyRetry,
    begin_sqlite_writes_immediately,
    cap_sqlite_busy_wait,
    retry_automation_triggers_when_busy,
)
from fearless.platform.hosts import HostCheck
from fearless.platform.pool_limit import hold_pool_limits_at_pending
from fearless.platform.reports import report_route
from fearless.platform.slot_recount import recount_before_serving


def build_app(runs: Path, allowed_hosts: list[str]):
    """Prefect's app, the report route first (before the UI's catch-all mount), behind the
    Host check; changes SQLite refused as busy are retried here (`busy_retry`)."""
    import prefect.settings
    from prefect.server.api.server import create_app

    retry_automation_triggers_when_busy()
    cap_sqlite_busy_wait()
    begin_sqlite_writes_immediately()
    hold_pool_limits_at_pending()
    app = create_app(final=True)
    auth = prefect.settings.get_current_settings().server.api.auth_string
    app.router.routes.insert(0, report_route(runs, auth.get_secret_value() if auth else None))
    return HostCheck(BusyRetry(app), allowed_hosts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--runs", type=Path, required=True, help="The run folders' root.")
    parser.add_argument(
        "--allowed-host", action="append", required=True, help="A Host name to answer to."
    )
    args = parser.parse_args(argv)

    import prefect.settings
    import uvicorn

    settings = prefect.settings.get_current_settings().server
    recount_before_serving()
    uvicorn.run(
        build_app(args.runs, args.allowed_host),
        host=args.host,
        port=args.port,
        timeout_keep_alive=settings.api.keepalive_timeout,
        log_level=settings.logging_level.lower(),
    )


if __name__ == "__main__":
    main()
