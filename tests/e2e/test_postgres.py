"""Releases on a server whose database is PostgreSQL, with two workers and a pool that runs one
flow run at once: the second release waits Scheduled (and `fearless status` says why) while
the first runs, the server is killed and started again mid-load-test, both finish, and nothing
of them or of the server is left afterwards. Runs proposed Pending at the same moment on
PostgreSQL never take more of the pool's slots than its limit."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from uuid import UUID

import psutil
import pytest

from tests.e2e.conftest import FAST, fearless_cli
from tests.e2e.second_server import pointed_at, second_server
from tests.faults.matrix import FaultRow, record
from tests.faults.test_server_restart import restart_server
from tests.faults.test_worker_loss import running_step
from tests.integration.test_pool_limit import probe_pool, race_to_pending

pytestmark = pytest.mark.e2e
# A load test long enough to still be running once `fearless status` has answered.
LONGER_LOAD = {**FAST, "load": {"duration_s": 8, "rate": 40}}
WAITING = {"Scheduled", "Late", "AwaitingConcurrencySlot"}
SLOT_HOLDING = {"Pending", "Running"}


def _states(client, started) -> list[str]:
    return [client.read_flow_run(UUID(s.flow_run_id)).state.name for s in started]


def _at_gate(client, started) -> bool:
    return client.read_flow_run(UUID(started.flow_run_id)).state.is_paused()


def _until(what, check, timeout_s: float = 240, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(every_s)
    return found


def _rows_in_postgres(cluster, names: list[str]) -> int:
    from fearless.platform.postgres import postgres_bin

    quoted = ", ".join(f"'{n}'" for n in names)
    found = subprocess.run(
        [str(postgres_bin("psql")), "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "prefect"]
        + ["-d", "prefect", "-tAc", f"SELECT count(*) FROM flow_run WHERE name IN ({quoted})"],
        env={**os.environ, "PGPASSWORD": cluster.password},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(found.stdout.strip())


def _processes_of(state: Path) -> list[str]:
    left = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("FEARLESS_STATE_DIR") == str(state):
                left.append(" ".join(proc.cmdline()[:4]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return left


@pytest.mark.timeout(900)  # a server of its own, PostgreSQL, and two releases one after the other
def test_releases_on_postgres_wait_for_the_pool_then_finish_leaving_nothing(credit_project):
    from prefect.client.orchestration import get_client

    from fearless.platform.postgres import running_postgres
    from fearless.release.runs import decide, start_release

    state = Path(tempfile.mkdtemp(prefix="fearless-pg-"))
    try:
        with (
            second_server(state, database="postgres", workers=2, pool_concurrency=1) as services,
            pointed_at(services.settings),
            get_client(sync_client=True) as client,
        ):
            settings = services.settings
            cluster = running_postgres(state / "postgres")
            assert cluster is not None
            project = str(credit_project)
            started = [
                start_release(settings, services.registry, project, overrides=LONGER_LOAD)
                for _ in range(2)
            ]
            names = [s.release_id for s in started]
            assert _rows_in_postgres(cluster, names) == 2  # the server keeps them in PostgreSQL

            # The pool runs one at a time: the other waits in its own queue, and status says why.
            def one_runs_one_waits():
                states = _states(client, started)
                assert not set(states) <= SLOT_HOLDING, f"pool limit 1 exceeded: {states}"
                return "Running" in states and (WAITING & set(states)) and states

            states = _until("one release running, the other waiting", one_runs_one_waits)
            first, second = (0, 1) if states[0] == "Running" else (1, 0)
            status = fearless_cli("status")
            line = next(x for x in status.stdout.splitlines() if names[second] in x)
            assert f"waiting: pool {settings.work_pool} runs 1 at once" in line, status.stdout
            assert names[first] in line

            # The server is killed and started again mid-load-test: both releases go on.
            flow_run_id = UUID(started[first].flow_run_id)
            _until("the load test running", lambda: running_step(client, flow_run_id, "run-load"))
            back_s = restart_server(settings)

            # A release waiting at its gate holds no slot: the other one runs meanwhile.
            for index in (first, second):
                _until(f"{names[index]} at its gate", lambda i=index: _at_gate(client, started[i]))
                decide(client, names[index], approve=False, approver="test", comment="storm")
            _until("both final", lambda: _states(client, started) == ["Rejected", "Rejected"])
            left = [e.url for e in services.environments.list()]
            record(
                FaultRow(
                    fault="server SIGKILL + restart (PostgreSQL)",
                    step="load test (2 releases: one running, one waiting)",
                    outcome="both went on to the gate; Rejected, Rejected",
                    leaked=len(left),
                    recover_s=round(back_s, 2),
                )
            )
            queues = _until(
                "their queues removed",
                lambda: (
                    [
                        q.name
                        for q in client.read_work_queues(work_pool_name=settings.work_pool)
                        if q.name != "default"
                    ]
                    == []
                ),
                timeout_s=30,
            )
            assert queues is True
            assert services.environments.list() == []

            # Two workers' polls can hand out two runs at once (SKIP LOCKED); the limit holds
            # where a run takes its slot, serialized per pool on PostgreSQL too.
            for _ in range(3):
                with probe_pool(client, limit=1, queues=3) as runs:
                    names = sorted(race_to_pending(runs))
                    assert names == ["AwaitingConcurrencySlot"] * 2 + ["Pending"], names
        assert running_postgres(state / "postgres") is None
        assert _processes_of(state) == []
    finally:
        shutil.rmtree(state, ignore_errors=True)
