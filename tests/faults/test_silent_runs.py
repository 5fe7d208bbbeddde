"""A release run whose heartbeats fell silent is crashed (and so resumed) only if its process
is gone: a busy server evaluates events late, and silence alone once crashed a live run, whose
resume then ran a second engine on the same release (fresh-clone CI)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import boto3
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Paused, Running

from fearless.platform.orphans import ecs_task_alive
from fearless.release.recovery import crash_if_lost
from fearless.settings import Settings
from tests.integration.conftest import AWS_REGION

pytestmark = pytest.mark.e2e


@flow(name="silent-probe")  # not release-pipeline: the cleanup automation leaves it alone
def silent_probe() -> None:
    """Never run: a flow run of it stands for a release run whose heartbeats stopped."""


def probe_run(client, engine_pid: int):
    run = client.create_flow_run(silent_probe, state=Running())
    client.update_flow_run(run.id, infrastructure_pid=str(engine_pid))
    return client.read_flow_run(run.id)


def test_a_silent_run_whose_process_runs_is_left_running(platform):
    # What the check looks for in a flow run's process: Prefect on its command line.
    engine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "prefect"])
    try:
        with get_client(sync_client=True) as client:
            run = probe_run(client, engine.pid)
            (said,) = crash_if_lost(platform.settings, client, run, 100)
            assert "left running" in said and str(engine.pid) in said
            assert client.read_flow_run(run.id).state.is_running()
            client.set_flow_run_state(run.id, Paused(), force=True)
            engine.kill()
            engine.wait()
            # Waiting for its approver meanwhile: no process to lose.
            assert crash_if_lost(platform.settings, client, client.read_flow_run(run.id), 100) == []
            assert client.read_flow_run(run.id).state.is_paused()
    finally:
        engine.kill()
        engine.wait()


def test_the_automations_cleanup_crashes_a_silent_run_whose_process_is_gone(platform):
    engine = subprocess.Popen([sys.executable, "-c", "pass"])
    engine.wait()
    with get_client(sync_client=True) as client:
        run = probe_run(client, engine.pid)
    # As the heartbeat automation starts it: the deployment, with the event's resource id.
    cleanup = run_deployment(
        "release-cleanup/release-cleanup",
        parameters={"flow_run_id": f"prefect.flow-run.{run.id}", "silent_s": 100},
        timeout=240,
    )
    assert cleanup.state.is_completed(), cleanup.state
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state.is_crashed() and state.message == "no heartbeat for 100 s: its process was lost"


def test_an_ecs_flow_runs_task_is_alive_until_it_stops(moto_endpoint):
    ecs = boto3.client("ecs", region_name=AWS_REGION, endpoint_url=moto_endpoint)
    ec2 = boto3.client("ec2", region_name=AWS_REGION, endpoint_url=moto_endpoint)
    ecs.create_cluster(clusterName="flows")
    # moto runs a Fargate task only half-way (RunTask fails): an EC2-backed one, as ECS does.
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]
    document = json.dumps({"instanceId": instance["InstanceId"]})
    ecs.register_container_instance(cluster="flows", instanceIdentityDocument=document)
    ecs.register_task_definition(
        family="flow-run", containerDefinitions=[{"name": "c", "image": "i", "memory": 512}]
    )
    (task,) = ecs.run_task(cluster="flows", taskDefinition="flow-run")["tasks"]
    settings = Settings(aws_region=AWS_REGION, aws_endpoint_url=moto_endpoint)
    identifier = f"flows::{task['taskArn']}"  # as prefect-aws's worker records it
    assert ecs_task_alive(settings, identifier)
    ecs.stop_task(cluster="flows", task=task["taskArn"])
    deadline = time.monotonic() + 10
    while ecs_task_alive(settings, identifier) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ecs_task_alive(settings, identifier)
    assert not ecs_task_alive(settings, f"flows::{task['taskArn'][:-6]}000000")  # unknown
    assert not ecs_task_alive(settings, None) and not ecs_task_alive(settings, "12345")
