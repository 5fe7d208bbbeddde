"""The Prefect server is killed (SIGKILL) and started again while a release holds a slot.

Prefect keeps concurrency leases in the server's memory by default: after a restart the lease a
release renews is unknown, its renewal fails (Prefect then stops the step holding it), and the
slot's count stays taken for good, so the next promotion of that model waits for ever. The
embedded server keeps them on disk (`PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE`).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from fearless.platform import processes
from fearless.platform.server import SERVER, WORKER, _read_handle, server_up
from fearless.platform.slots import leased_slot
from tests.e2e.conftest import FAST, fearless_cli
from tests.faults.matrix import FaultRow, record
from tests.faults.test_worker_loss import faults_project, leaks, running_step, wait_until

pytestmark = pytest.mark.e2e
SLOT = "promote-server-restart-probe"
ORPHANED = "promote-orphaned-unit-probe"
NOT_OURS = "someone-elses-limit-probe"  # counted without leases, maybe: left as it is


def restart_server(settings) -> float:
    """SIGKILL the server, start it again; seconds until it answers."""
    server = _read_handle(settings, SERVER)
    assert server is not None, "no server to kill"
    os.kill(server.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while processes.is_alive(server):
        time.sleep(0.05)
    server_up(settings, timeout_s=300)
    return time.monotonic() - killed_at


def test_a_slot_held_across_a_server_restart_is_renewed_then_free_again(platform):
    settings = platform.settings
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(SLOT, limit=1)
    with leased_slot(SLOT, timeout_s=30) as lease_id:
        back_s = restart_server(settings)
        with get_client(sync_client=True) as client:
            client.renew_concurrency_lease(lease_id=lease_id, lease_duration=60)
    with leased_slot(SLOT, timeout_s=30):  # given back: free at once, not taken for good
        pass
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(SLOT).active_slots == 0
    record(
        FaultRow(
            fault="server SIGKILL + restart (SQLite)",
            step="a slot held (load test, promotion, bake)",
            outcome="lease renewed after the restart, slot given back",
            recover_s=round(back_s, 2),
        )
    )


def test_a_slot_counted_without_its_lease_is_recounted_when_the_server_starts(platform):
    """A server killed between counting a slot and writing its lease leaves the count up with
    no lease to expire (made here by hand): once started again, each of our slots counts
    what its leases hold, so the held lease keeps its unit and the orphaned one is freed."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    settings = platform.settings
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(ORPHANED, limit=2)
        client.upsert_global_concurrency_limit_by_name(NOT_OURS, limit=2)
    with leased_slot(ORPHANED, timeout_s=30):
        with get_client(sync_client=True) as client:
            for name in (ORPHANED, NOT_OURS):
                update = GlobalConcurrencyLimitUpdate(active_slots=2)
                client.update_global_concurrency_limit(name, update)
        back_s = restart_server(settings)
        with get_client(sync_client=True) as client:
            assert client.read_global_concurrency_limit_by_name(ORPHANED).active_slots == 1
            assert client.read_global_concurrency_limit_by_name(NOT_OURS).active_slots == 2
        said = (settings.paths.processes / "prefect-server.log").read_text()
        assert f"slot recounted at start: {ORPHANED}: 2 -> 1 (its leases)" in said
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(ORPHANED).active_slots == 0
        for name in (ORPHANED, NOT_OURS):
            client.delete_global_concurrency_limit_by_name(name)
    record(
        FaultRow(
            fault="server SIGKILL between counting a slot and writing its lease",
            step="a slot taken (any step)",
            outcome="recounted from its leases when the server started: the unit freed",
            recover_s=round(back_s, 2),
        )
    )


def test_the_worker_rides_out_a_server_restart_or_a_busy_database(platform):
    """A worker whose client gave up after Prefect's default 5 retries crashed the releases it
    was submitting while SQLite stayed busy (the storm bench); its client retries 7 times
    (2 ... 128 s), and it is the same worker before and after a server restart."""
    settings = platform.settings
    worker = _read_handle(settings, WORKER)
    assert worker is not None, "no worker"
    environ = dict(
        line.split("=", 1)
        for line in Path(f"/proc/{worker.pid}/environ").read_bytes().decode().split("\0")
        if "=" in line
    )
    assert environ.get("PREFECT_CLIENT_MAX_RETRIES") == "7", environ.get(
        "PREFECT_CLIENT_MAX_RETRIES"
    )
    restart_server(settings)
    assert processes.is_alive(worker) and _read_handle(settings, WORKER).pid == worker.pid


def test_a_release_goes_on_through_server_restarts_at_its_steps(releases, credit_project, tmp_path):
    """The server is killed and started again while a release provisions, load-tests and
    bakes: each step's calls are asked again until it answers, the release ends Promoted, and
    nothing of it is left."""
    project = faults_project(credit_project, tmp_path, "credit-server-restart")
    started = releases.start(
        project, {**FAST, "load": {"duration_s": 6, "rate": 40}, "bake": {"window_s": 6}}
    )
    flow_run_id, settings = UUID(started.flow_run_id), releases.settings
    rows: list[dict] = []

    def restart_at(step: str, label: str) -> None:
        with get_client(sync_client=True) as client:
            wait_until(lambda: running_step(client, flow_run_id, step), f"the {label} step")
        back_s = restart_server(settings)
        rows.append({"step": label, "recover_s": round(back_s, 2)})

    restart_at("provision-env", "provision")
    restart_at("run-load-test", "load test")
    waiting = releases.wait(started)
    assert waiting.state.name == "Suspended", waiting.state
    approved = fearless_cli("approve", started.release_id, "--by", "ann")
    assert approved.returncode == 0, approved.stderr
    restart_at("bake", "bake")
    end = releases.wait(started, paused_ok=False)
    left = leaks(releases, started.release_id)
    for fields in rows:
        record(
            FaultRow(
                fault="server SIGKILL + restart (SQLite)",
                outcome=f"release went on; {end.state.name}",
                leaked=len(left),
                lost_releases=0 if end.state.name == "Promoted" else 1,
                **fields,
            )
        )
    assert end.state.name == "Promoted", end.state
    assert left == []
