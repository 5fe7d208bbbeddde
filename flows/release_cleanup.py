"""Tear down a release whose run ended with no process left to do it (timeout, cancel, crash).

Started by the automations in `deployments/automations.yaml`; safe to run more than once. With
`silent_s`, the run's heartbeats stopped: it is marked Crashed only if its process is gone,
and that Crashed state starts the cleanup that resumes it.
"""

from __future__ import annotations

from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client

from fearless.composition import build_services
from fearless.platform.processes import run_in_background
from fearless.release.recovery import crash_if_lost
from fearless.release.runs import close_release


@flow(name="release-cleanup")
def release_cleanup(flow_run_id: str, silent_s: int | None = None) -> list[str]:
    """`flow_run_id` may be a bare id or an event resource id (`prefect.flow-run.<id>`)."""
    run_in_background()  # it may start while another release's load test measures the host
    run_id = UUID(flow_run_id.rpartition(".")[2])
    services = build_services()
    with get_client(sync_client=True) as client:
        if silent_s is None:
            done = close_release(services, client, run_id)
        else:
            done = crash_if_lost(services.settings, client, client.read_flow_run(run_id), silent_s)
    get_run_logger().info("cleanup of %s: %s", flow_run_id, ", ".join(done) or "nothing left")
    return done
