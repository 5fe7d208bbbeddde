"""Resuming a release whose process was lost: how many times, with what state, and what the
process pool's template does so that a worker's death does not end its flow runs."""

from __future__ import annotations

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


def test_the_heartbeat_automation_waits_longer_than_three_heartbeats_and_spares_waiting_runs():
    spec = yaml.safe_load((PROJECT_ROOT / "deployments" / "automations.yaml").read_text())
    (lost,) = [a for a in spec["automations"] if a["name"] == "fearless-release-heartbeat-lost"]
    trigger = lost["trigger"]
    assert trigger["posture"] == "Proactive" and trigger["after"] == ["prefect.flow-run.heartbeat"]
    assert trigger["within"] > 3 * FLOW_HEARTBEAT_S
    # A run waiting for its approver has no process and sends no heartbeat: not lost.
    assert {"prefect.flow-run.Suspended", "prefect.flow-run.Paused"} <= set(trigger["expect"])
    # Silence alone crashes nothing: the cleanup flow asks whether the process is gone.
    (action,) = lost["actions"]
    assert action["type"] == "run-deployment"
    assert action["deployment"] == "release-cleanup/release-cleanup"
    assert action["parameters"] == {
        "flow_run_id": "{{ event.resource.id }}",
        "silent_s": trigger["within"],
    }


def test_a_run_counts_as_alive_only_while_a_prefect_process_has_its_pid():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not engine_alive(str(sleeper.pid))  # alive, but not a flow run's engine
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not engine_alive(str(sleeper.pid)) and not engine_alive(None)
    assert not engine_alive("not-a-pid")
