"""Scheduled sweep of leaked test environments (past their expiry)."""

from __future__ import annotations

from prefect import flow, get_run_logger

from fearless.composition import build_services
from fearless.environments.janitor import sweep
from fearless.platform.processes import run_in_background


@flow(name="janitor")
def janitor(dry_run: bool = False) -> list[str]:
    run_in_background()  # every 15 min, whatever load test is measuring the host then
    removed = sweep(build_services().environments, dry_run=dry_run)
    names = [f"{env.release_id}/{env.role}" for env in removed]
    get_run_logger().info(
        "%s: %s", "would remove" if dry_run else "removed", ", ".join(names) or "nothing"
    )
    return names
