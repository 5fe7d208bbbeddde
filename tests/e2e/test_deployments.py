"""The deployments, schedules and automations as the Prefect server shows them."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from tests.e2e.conftest import fearless_cli

pytestmark = pytest.mark.e2e

EXPECTED = {
    "release",
    "release-pipeline",
    "release-cleanup",
    "janitor",
    "nightly-drift",
    "drift-alert",
    "rollback",
    "simulate",
}


def snapshot():
    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        automations = sorted(a.name for a in client.read_automations())
    return deployments, automations


def test_every_flow_is_deployed_with_its_schedule_and_form_and_deploy_is_safe_to_repeat(platform):
    before, automations_before = snapshot()
    assert EXPECTED <= set(before)
    assert all(d.work_pool_name == platform.settings.work_pool for d in before.values())
    for name, cron in (("janitor", "*/15 * * * *"), ("nightly-drift", "0 2 * * *")):
        schedules = before[name].schedules
        assert [s.schedule.cron for s in schedules] == [cron]
        assert schedules[0].schedule.timezone == "UTC"
    form = before["release"].parameter_openapi_schema
    assert form["properties"]["model_path"]["default"] == "examples/credit"
    assert "ReleaseOptions" in str(form)

    again = fearless_cli("deploy")
    assert again.returncode == 0, again.stderr
    after, automations_after = snapshot()
    assert {n: d.id for n, d in after.items()} == {n: d.id for n, d in before.items()}
    assert automations_after == automations_before
    assert automations_after.count("fearless-release-cleanup") == 1


def test_the_server_schedules_the_janitors_runs(platform):
    """A schedule in prefect.yaml is worth something only if the server's scheduler makes its
    runs (it once failed on every pass with SQLAlchemy 2.1, and no scheduled flow ever ran)."""
    import time

    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    janitor = DeploymentFilter(name=DeploymentFilterName(any_=["janitor"]))
    deadline = time.monotonic() + 180  # the scheduler's loop runs every 60 s
    with get_client(sync_client=True) as client:
        while not (runs := client.read_flow_runs(deployment_filter=janitor, limit=5)):
            assert time.monotonic() < deadline, "no janitor run scheduled within 180 s"
            time.sleep(2)
    assert all(
        run.state and run.state.name in ("Scheduled", "Late", "Pending", "Running", "Completed")
        for run in runs
    )
