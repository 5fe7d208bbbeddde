"""The worker, or its whole host, is lost at a step of a release: the next worker resumes the
release from its persisted steps, and the release is never silently lost.

"Host lost" kills the worker and the flow run's process with SIGKILL, as a machine or container
dying does; "worker lost" kills the worker alone. `fearless server up` then starts a new worker,
as a supervisor would, and the release must end Promoted with nothing left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from uuid import UUID

import psutil
import pytest
import yaml
from prefect.client.orchestration import get_client

from fearless.platform.server import WORKER, _read_handle, server_up
from tests.e2e.conftest import FAST, fearless_cli
from tests.faults.matrix import FaultRow, record

pytestmark = pytest.mark.e2e

STEP_TIMEOUT_S = 240
HOST_LOST = "host lost (worker + flow run SIGKILL)"
WORKER_LOST = "worker lost (SIGKILL)"


def row(fault: str, step: str, outcome: str, back_at, lost_at: float) -> dict:
    """A matrix row's fields; recovery ends when the step runs again (never stopped: 0)."""
    recover_s = back_at.timestamp() - lost_at if back_at else 0.0
    return {"fault": fault, "step": step, "outcome": outcome, "recover_s": recover_s}


def faults_project(credit_project, tmp_path, model: str):
    """The example under a model name of its own: its promotions touch no other test's model."""
    copy = shutil.copytree(credit_project, tmp_path / model)
    spec_file = copy / "fearless.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec_file.write_text(yaml.safe_dump({**spec, "name": model}, sort_keys=False))
    return copy


def running_step(client, flow_run_id: UUID, step: str, since: float = 0.0):
    """The task run of `step` (its name's prefix) that is Running, started after `since`."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    mine = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    flow_run, steps = client.read_flow_run(flow_run_id), client.read_task_runs(flow_run_filter=mine)
    LAST_SEEN[:] = [f"run {flow_run.state.name}: {flow_run.state.message}", *(
        f"  {t.name} {t.state.name if t.state else '?'}: {t.state.message if t.state else ''}"
        for t in steps
    )]  # fmt: skip
    for run in steps:
        started = run.start_time.timestamp() if run.start_time else 0.0
        running = run.state is not None and run.state.is_running()
        if run.name.startswith(step) and running and started >= since:
            return run
    return None


def wait_until(condition, what: str, timeout_s: float = STEP_TIMEOUT_S, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(poll_s)
    raise AssertionError(f"not within {timeout_s} s: {what}\n{LAST_SEEN}")


LAST_SEEN: list[str] = []  # the release's states when a wait ends, for the failure message


def lose(settings, flow_run_id: UUID, host: bool) -> float:
    """SIGKILL the worker (and, when the host is lost, the flow run's process); the time."""
    worker = _read_handle(settings, WORKER)
    assert worker is not None, "no worker to kill"
    with get_client(sync_client=True) as client:
        engine = client.read_flow_run(flow_run_id).infrastructure_pid
    launcher = " ".join(psutil.Process(int(engine)).cmdline())
    assert "fearless.platform.flow_start" in launcher, launcher  # the run's process, warm
    os.kill(worker.pid, signal.SIGKILL)
    if host:
        os.kill(int(engine), signal.SIGKILL)
    return time.time()


def processes_of(release_id: str) -> list[str]:
    """Processes still naming the release (a load generator, a model API)."""
    left = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if release_id in cmdline and "pytest" not in cmdline:
            left.append(f"{proc.pid}: {cmdline[:120]}")
    return left


def leaks(releases, release_id: str) -> list[str]:
    """Environments, the work queue and processes the release left, once it had time to end."""
    from tests.e2e.test_release import queue_exists

    def gone():
        left = [e.url for e in releases.services.environments.list() if e.release_id == release_id]
        left += ["work queue"] if queue_exists(releases.settings, release_id) else []
        return left + processes_of(release_id)

    deadline = time.monotonic() + 60  # an orphaned load generator ends with its test
    while (left := gone()) and time.monotonic() < deadline:
        time.sleep(1)
    return left


def worker_lost_at(client, settings, flow_run_id: UUID, step: str, label: str) -> dict:
    """SIGKILL the worker alone once `step` runs, start the next one: the run goes on."""
    wait_until(lambda: running_step(client, flow_run_id, step), f"the {label} step running")
    lost_at = lose(settings, flow_run_id, host=False)
    server_up(settings)
    return row(WORKER_LOST, label, "run went on without its worker", None, lost_at)


def host_lost_at(client, settings, flow_run_id: UUID, step: str, label: str) -> dict:
    """SIGKILL the worker and the run's process once `step` runs; the step must run again."""
    wait_until(lambda: running_step(client, flow_run_id, step), f"the {label} step running")
    lost_at = lose(settings, flow_run_id, host=True)
    server_up(settings)
    again = wait_until(
        lambda: running_step(client, flow_run_id, step, since=lost_at),
        f"the {label} step running again",
    )
    return row(HOST_LOST, label, "resumed by the next worker", again.start_time, lost_at)


def test_a_release_survives_its_worker_or_host_lost_at_every_step(
    releases, credit_project, tmp_path
):
    """One release, a fault at each step: the worker alone lost at build, provision, drift
    and promotion (the run outlives it); the whole host lost mid-load-test and mid-bake (the
    next worker resumes the run, the step runs again). Approved in between; it ends Promoted."""
    project = faults_project(credit_project, tmp_path, "credit-faults")
    started = releases.start(project, {**FAST, "bake": {"window_s": 6}})
    flow_run_id, settings = UUID(started.flow_run_id), releases.settings
    rows: list[dict] = []
    with get_client(sync_client=True) as client:
        rows.append(worker_lost_at(client, settings, flow_run_id, "build-bundle", "build"))
        rows.append(worker_lost_at(client, settings, flow_run_id, "provision-env", "provision"))
        rows.append(host_lost_at(client, settings, flow_run_id, "run-load-test", "load test"))
        assert "resumed:1" in client.read_flow_run(flow_run_id).tags
        rows.append(worker_lost_at(client, settings, flow_run_id, "check-drift", "drift"))
        waiting = releases.wait(started)
        assert waiting.state.name == "Suspended", waiting.state
        assert "resumed:2" not in client.read_flow_run(flow_run_id).tags

        # Approved after a crash resume: the gate takes the decision once, promotion follows.
        approved = fearless_cli("approve", started.release_id, "--by", "ann")
        assert approved.returncode == 0, approved.stderr
        rows.append(worker_lost_at(client, settings, flow_run_id, "promote-model", "promote"))
        rows.append(host_lost_at(client, settings, flow_run_id, "bake", "bake"))
        assert "resumed:2" in client.read_flow_run(flow_run_id).tags
    end = releases.wait(started, paused_ok=False)
    left = leaks(releases, started.release_id)
    named = end.state.name == "Promoted"
    for fields in rows:
        record(
            FaultRow(
                **{**fields, "outcome": f"{fields['outcome']}; release {end.state.name}"},
                leaked=len(left),
                lost_releases=0 if named else 1,
            )
        )
    assert named, end.state
    assert left == []
