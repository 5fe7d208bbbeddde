"""Resuming a release whose process was lost: how many times, with what state, and what the
process pool's template does so that a worker's death does not end its flow runs."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from fearless.platform.orphans import engine_alive
from fearless.platform.work_pools import FLOW_HEARTBEAT_S, process_template_for
from fearless.release.recovery import (
    MAX_RESUMES,
    REPROVISION_TAG,
    RESUMED_TAG,
    counted,
    plan_resume,
    tagged,
)
from fearless.settings import PROJECT_ROOT, Settings


def test_a_lost_run_is_resumed_up_to_the_limit_then_ends_naming_why():
    first = plan_resume(["fearless", "model:credit"], "aborted by Python system exit call")
    assert first.resume and first.attempt == 1
    assert "aborted by Python system exit call" in first.message
    assert f"attempt 1 of {MAX_RESUMES}" in first.message
    last = plan_resume([f"{RESUMED_TAG}{MAX_RESUMES - 1}"], None)
    assert last.resume and last.attempt == MAX_RESUMES
    given_up = plan_resume([f"{RESUMED_TAG}{MAX_RESUMES}"], "no heartbeat for 100 s")
    assert not given_up.resume
    assert f"lost {MAX_RESUMES} times" in given_up.message and "torn down" in given_up.message


def test_counts_live_in_one_tag_each():
    tags = tagged(["model:credit", f"{RESUMED_TAG}1", f"{REPROVISION_TAG}2"], RESUMED_TAG, 2)
    assert tags == ["model:credit", f"{REPROVISION_TAG}2", f"{RESUMED_TAG}2"]
    assert counted(tags, RESUMED_TAG) == 2 and counted(tags, REPROVISION_TAG) == 2
    assert counted(["model:credit", "resumed:x"], RESUMED_TAG) == 0


def test_flow_runs_of_the_process_pool_outlive_their_worker_and_heartbeat():
    properties = process_template_for(Settings())["variables"]["properties"]
    # A pipe to the worker: its death ends the run at its next log line (broken pipe).
    assert properties["stream_output"]["default"] is False
    assert properties["env"]["default"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(
        FLOW_HEARTBEAT_S
    )


def _heartbeat_lost_automation() -> dict:
    spec = yaml.safe_load((PROJECT_ROOT / "deployments" / "automations.yaml").read_text())
    (lost,) = [a for a in spec["automations"] if a["name"] == "fearless-release-heartbeat-lost"]
    return lost


def _state_names_the_release_ends_in() -> set[str]:
    """Every state name a release's code sets (`Failed(name="GateFailed", ...)` and the like)."""
    pattern = re.compile(r"\b(?:Completed|Failed|Cancelled|Crashed)\(\s*name=\"(\w+)\"")
    sources = [*(PROJECT_ROOT / "flows").glob("*.py"), *(PROJECT_ROOT / "tasks").glob("*.py")]
    sources += (PROJECT_ROOT / "fearless" / "release").glob("*.py")
    return {name for path in sources for name in pattern.findall(path.read_text())}


def test_the_heartbeat_automation_waits_longer_than_three_heartbeats_and_spares_waiting_runs():
    lost = _heartbeat_lost_automation()
    trigger = lost["trigger"]
    assert trigger["posture"] == "Proactive" and trigger["after"] == ["prefect.flow-run.heartbeat"]
    assert trigger["within"] > 3 * FLOW_HEARTBEAT_S
    # Silence alone crashes nothing: the cleanup flow asks whether the process is gone.
    (action,) = lost["actions"]
    assert action["type"] == "run-deployment"
    assert action["deployment"] == "release-cleanup/release-cleanup"
    assert action["parameters"] == {
        "flow_run_id": "{{ event.resource.id }}",
        "silent_s": trigger["within"],
    }


def test_a_release_that_ended_or_waits_is_never_taken_for_lost_whatever_its_state_is_named():
    """A state's event is named by the state's name. The expected events once listed Prefect's
    names only, so a release that ended Promoted, Rejected or GateFailed sent nothing the
    trigger expected after its last heartbeat, and 100 s later each one started a cleanup run
    (seen landing in the next release's load test, on every release)."""
    from prefect.server.events.schemas.automations import EventTrigger

    trigger = EventTrigger(**_heartbeat_lost_automation()["trigger"])  # as the server reads it
    ours = _state_names_the_release_ends_in()
    assert {"Promoted", "Rejected", "GateFailed", "Inconclusive", "TimedOut"} <= ours
    # A run waiting for its approver has no process and sends no heartbeat: not lost either.
    prefects = {"Completed", "Failed", "Cancelled", "Cancelling", "Crashed", "Paused"}
    prefects |= {"Suspended", "Scheduled", "AwaitingRetry", "Running"}
    for name in sorted(ours | prefects | {"heartbeat"}):
        assert trigger.expects(f"prefect.flow-run.{name}"), f"prefect.flow-run.{name}"
    assert not trigger.expects("prefect.task-run.Completed")  # only the run's own events
    assert trigger.starts_after("prefect.flow-run.heartbeat")


def test_a_run_counts_as_alive_only_while_a_prefect_process_has_its_pid():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not engine_alive(str(sleeper.pid))  # alive, but not a flow run's engine
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not engine_alive(str(sleeper.pid)) and not engine_alive(None)
    assert not engine_alive("not-a-pid")
