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

import pytest
from prefect.client.orchestration import get_client

from fearless.platform import processes
from fearless.platform.server import SERVER, WORKER, _read_handle, server_up
from fearless.platform.slots import leased_slot
from tests.faults.matrix import FaultRow, record

pytestmark = pytest.mark.e2e
SLOT = "promote-server-restart-probe"


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
