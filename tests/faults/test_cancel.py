"""Cancelling a release mid-load-test (from the UI, the CLI or the API: all set Cancelling)
stops its load generator, tears down its environments and removes its queue."""

from __future__ import annotations

import time
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Cancelling

from tests.e2e.conftest import FAST
from tests.faults.matrix import FaultRow, record
from tests.faults.test_worker_loss import faults_project, leaks, running_step, wait_until

pytestmark = pytest.mark.e2e


def test_cancelling_mid_load_test_stops_the_generator_and_tears_everything_down(
    releases, credit_project, tmp_path
):
    project = faults_project(credit_project, tmp_path, "credit-cancel")
    started = releases.start(project, overrides={**FAST, "load": {"duration_s": 20, "rate": 40}})
    flow_run_id = UUID(started.flow_run_id)
    with get_client(sync_client=True) as client:
        wait_until(lambda: running_step(client, flow_run_id, "run-load-test"), "a load test")
        cancelled_at = time.time()
        client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
    end = releases.wait(started, paused_ok=False)
    left = leaks(releases, started.release_id)
    record(
        FaultRow(
            fault="cancel",
            step="load test",
            outcome=f"release {end.state.name}",
            leaked=len(left),
            lost_releases=0 if end.state.is_cancelled() else 1,
            recover_s=time.time() - cancelled_at,
        )
    )
    assert left == [], left
