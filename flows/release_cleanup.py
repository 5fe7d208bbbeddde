"""Tear down a release whose run ended with no process left to do it (timeout, cancel, crash).

Started by the automation in `deployments/automations.yaml`; safe to run more than once.
"""

from __future__ import annotations

from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client

from fearless.composition import build_services
from fearless.release.runs import close_release


@flow(name="release-cleanup")
def release_cleanup(flow_run_id: str) -> list[str]:
    """`flow_run_id` may be a bare id or an event resource id (`prefect.flow-run.<id>`)."""
    with get_client(sync_client=True) as client:
        removed = close_release(build_services(), client, UUID(flow_run_id.rpartition(".")[2]))
    get_run_logger().info("cleanup of %s: %s", flow_run_id, ", ".join(removed) or "nothing left")
    return removed
