"""The ECS load generator against moto, with its tasks run for real on this machine.

Moto's RunTask records tasks but runs nothing, and moves a task towards STOPPED each time it
is described; here tasks stay RUNNING until stopped (moto's state manager), and `LocalEcs`
plays ECS's part: it runs each task's container command and environment, as the RunTask
override gave them, as a local process (`fearless.loadtest.fleet_task`, then Locust), the
master's private IP being this host, and once the master's process ends stops its task with
that exit code, as ECS would. The traffic and the reports go through moto's S3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from fearless.loadtest.ecs_fleet import (
    EcsFleet,
    EcsFleetTasks,
    FleetFailed,
    FleetRun,
    FleetTimedOut,
    ReportsMissing,
)
from fearless.loadtest.fleet import LocustFleet
from fearless.loadtest.traffic import write_traffic
from fearless.loadtest.verdict import generator_reason
from fearless.platform.processes import free_port
from fearless.settings import PROJECT_ROOT
from fearless.spec import LoadProfile
from tests.integration.conftest import AWS_REGION
from tests.integration.test_loadtest_runner import _start_standin, _wait_ready

CLUSTER, BUCKET, FAMILY, RELEASE = "loadgen", "fearless-artifacts", "fearless-loadgen", "credit-7"
SHORT = LoadProfile(profile="steady", users=4, spawn_rate=100, duration_s=3, batch_size=2)
EXITED = "Essential container in task exited"


@pytest.fixture(scope="module")
def account(moto_endpoint):
    """ECS (a cluster, the load generator's task definition, a VPC) and S3 on moto."""

    def make(service: str):
        return boto3.client(service, region_name=AWS_REGION, endpoint_url=moto_endpoint)

    ec2, ecs, s3 = make("ec2"), make("ecs"), make("s3")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto gives a task's network interface an address only in a VPC with DNS host names
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="loadgen", Description="lg", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family=FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[{"name": "locust", "image": "flows", "memory": 2048}],
    )
    s3.create_bucket(Bucket=BUCKET)
    _set_task_transition(moto_endpoint, {"progression": "manual", "times": 10**9})
    try:
        yield ecs, s3, EcsFleetTasks(CLUSTER, FAMILY, [subnet], [group], tags={"team": "risk"})
    finally:
        _set_task_transition(moto_endpoint, None)


def _set_task_transition(endpoint: str, transition: dict | None) -> None:
    """Tasks stay as they are until stopped (None: moto's default again, for other modules)."""
    action = "set-transition" if transition else "unset-transition"
    body = {"model_name": "ecs::task", **({"transition": transition} if transition else {})}
    request = urllib.request.Request(
        f"{endpoint}/moto-api/state-manager/{action}", data=json.dumps(body).encode(), method="POST"
    )
    urllib.request.urlopen(request)


def _exit_code_in_moto(arn: str, code: int) -> None:
    """What ECS records of a container that exited (moto's RunTask runs no container: its
    server is in this process, so its model is set directly)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ecs.models import ecs_backends

    ecs_backends[DEFAULT_ACCOUNT_ID][AWS_REGION].tasks[CLUSTER][arn].containers[0].exitCode = code


@pytest.fixture(scope="module")
def api():
    proc, url = _start_standin(STANDIN_DELAY_MS="10")
    try:
        _wait_ready(proc, url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def traffic(tmp_path) -> Path:
    records = [{"age": 20 + i, "income": 1000.0 * i, "purpose": "car"} for i in range(50)]
    return write_traffic(records, tmp_path / "traffic.jsonl")


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


class LocalEcs:
    """ECS's part for the tasks of a fleet run: `roles` says which tasks run as processes
    ("master", "worker"); none leaves the master running until EcsFleet stops it."""

    def __init__(self, ecs, endpoint: str, roles: tuple[str, ...] = ("master", "worker")) -> None:
        self.ecs, self.endpoint, self.roles = ecs, endpoint, roles
        self.run: FleetRun | None = None
        self.tasks: dict[str, dict] = {}
        self.exit_code: int | None = None
        self.master_output = ""

    def _start(self, task: dict) -> subprocess.Popen:
        (override,) = task["overrides"]["containerOverrides"]
        command = list(override["command"])
        if "--master-host" in command:  # the master's private IP is this host here
            command[command.index("--master-host") + 1] = "127.0.0.1"
        env = {e["name"]: e["value"] for e in override["environment"]}
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # "python"
        env = {**os.environ, **env, "FEARLESS_AWS_ENDPOINT_URL": self.endpoint, "PATH": path}
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def __call__(self, run: FleetRun) -> None:
        self.run = run
        described = self.ecs.describe_tasks(
            cluster=run.cluster, tasks=[run.master, *run.workers], include=["TAGS"]
        )["tasks"]
        self.tasks = {t["taskArn"]: t for t in described}
        if "master" not in self.roles:
            return
        master = self._start(self.tasks[run.master])
        workers = [self._start(self.tasks[a]) for a in run.workers if "worker" in self.roles]
        try:
            self.master_output, _ = master.communicate(timeout=120)
            for worker in workers:  # a worker quits when its master does
                worker.communicate(timeout=30)
        finally:
            for proc in (master, *workers):
                proc.kill()
                proc.wait()
        self.exit_code = master.returncode
        self.ecs.stop_task(cluster=run.cluster, task=run.master, reason=EXITED)
        _exit_code_in_moto(run.master, master.returncode)


def _fleet(account, ecs_run, workers: int = 2, wait_s: int = 30, **kwargs) -> EcsFleet:
    ecs, s3, tasks = account
    plan = LocustFleet(workers, master_port=free_port(), wait_for_workers_s=wait_s)
    here = EcsFleetTasks(
        tasks.cluster, tasks.task_definition, tasks.subnets, tasks.security_groups,
        project_dir=str(PROJECT_ROOT), traffic_path=str(kwargs.pop("traffic_path")),
        report_prefix=str(kwargs.pop("report_prefix")), tags=tasks.tags,
    )  # fmt: skip
    return EcsFleet(here, plan, ecs, s3, BUCKET, RELEASE, poll_s=0.1, started=ecs_run, **kwargs)


def _statuses(ecs, run: FleetRun) -> dict[str, str]:
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=[run.master, *run.workers])["tasks"]
    return {t["taskArn"]: t["lastStatus"] for t in tasks}


def _requests(ecs) -> list[dict]:
    """Every RunTask request the client sends from now on, as sent."""
    sent: list[dict] = []
    ecs.meta.events.register(
        "before-parameter-build.ecs.RunTask", lambda params, **_: sent.append(params)
    )
    return sent


def test_a_master_and_two_workers_on_ecs_drive_the_api_and_report_through_s3(
    account, api, traffic, tmp_path, moto_endpoint
):
    ecs, s3, _ = account
    sent = _requests(ecs)
    local = LocalEcs(ecs, moto_endpoint)
    fleet = _fleet(
        account, local, traffic_path=tmp_path / "task" / "traffic.jsonl",
        report_prefix=tmp_path / "task" / "reports" / "locust",
    )  # fmt: skip

    try:
        result = fleet.run(api, SHORT, traffic, tmp_path / "out")
    finally:
        print(f"the master task's output:\n{local.master_output}")

    assert local.exit_code == 0, local.master_output[-3000:]
    # The master first, alone; then the workers, pointing at the master's private IP.
    assert [r["count"] for r in sent] == [1, 2]
    assert {r["taskDefinition"] for r in sent} == {FAMILY}
    master, workers = local.tasks[local.run.master], [local.tasks[a] for a in local.run.workers]
    ip = next(
        d["value"] for d in master["attachments"][0]["details"] if d["name"] == "privateIPv4Address"
    )
    for task in workers:
        command = task["overrides"]["containerOverrides"][0]["command"]
        assert "worker" in command and _flag(command, "--master-host") == ip
    for task, role in [(master, "loadgen-master")] + [(w, "loadgen-worker") for w in workers]:
        tags = {t["key"]: t["value"] for t in task["tags"]}
        assert tags == {"team": "risk", "fearless:release-id": RELEASE, "fearless:role": role}
        assert task["taskDefinitionArn"].split("/")[-1] == f"{FAMILY}:1"
        assert task["launchType"] == "FARGATE"
    network = sent[0]["networkConfiguration"]["awsvpcConfiguration"]
    assert network == {**network, "subnets": fleet.tasks.subnets, "assignPublicIp": "DISABLED"}
    # Every task stopped: the workers by EcsFleet, after the master ended.
    assert set(_statuses(ecs, local.run).values()) == {"STOPPED"}
    # The traffic went up under the release's prefix, the reports came back through S3.
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"loadgen/{RELEASE}/")["Contents"]
    ]
    run_prefix = _flag(master["overrides"]["containerOverrides"][0]["command"], "--traffic")
    assert run_prefix.startswith(f"s3://{BUCKET}/loadgen/{RELEASE}/")
    assert {k.rsplit("/", 1)[-1] for k in keys} >= {
        "traffic.jsonl", "locust.json", "locust_stats.csv", "locust_failures.csv", "locust.html",
        "locust_latency.json", "locust.log",
    }  # fmt: skip
    # The same result the local runner builds, from the reports the master uploaded.
    out = tmp_path / "out"
    assert Path(result.json_path) == out / "locust.json" and Path(result.report_html).is_file()
    assert "2 ready workers" in Path(result.log_path).read_text()  # the master ran both
    assert result.requests > 0 and result.failures == 0, result.top_errors
    assert result.mode == "open" and result.target_rps == SHORT.target_rate
    assert 0.5 <= result.held_share <= 1.05, (result.requests, result.expected_requests)
    print(f"{result.requests} requests of {result.expected_requests:.0f}, {result.rps:.1f} req/s")
    assert result.p50_ms >= 10  # the stand-in sleeps 10 ms
    # The generator's CPU is not measured on ECS: it must not make the run inconclusive.
    assert result.host is None and result.generator_cores == 2
    assert generator_reason(result, 90.0) is None
    assert not result.generator_measured  # said so in the evidence, not "0%"


def test_a_master_whose_locust_fails_is_a_named_error_with_its_log(
    account, api, tmp_path, moto_endpoint
):
    ecs, _, _ = account
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    local = LocalEcs(ecs, moto_endpoint, roles=("master",))
    fleet = _fleet(
        account, local, traffic_path=tmp_path / "task" / "traffic.jsonl",
        report_prefix=tmp_path / "task" / "reports" / "locust",
    )  # fmt: skip

    with pytest.raises(FleetFailed, match=r"exited with code 1 \(Essential") as failed:
        fleet.run(api, SHORT, empty, tmp_path / "out")

    assert "no traffic records" in str(failed.value)  # the master's log, fetched from S3
    assert set(_statuses(ecs, local.run).values()) == {"STOPPED"}


def test_a_master_that_uploaded_no_results_is_a_named_error(account, api, traffic, tmp_path):
    ecs, _, _ = account
    run: list[FleetRun] = []

    def ended_at_once(started: FleetRun) -> None:  # exit 0, and nothing uploaded
        run.append(started)
        ecs.stop_task(cluster=CLUSTER, task=started.master, reason=EXITED)
        _exit_code_in_moto(started.master, 0)

    fleet = _fleet(
        account, ended_at_once, traffic_path=tmp_path / "t.jsonl", report_prefix=tmp_path / "r"
    )
    with pytest.raises(ReportsMissing, match=r"wrote no results to s3://.*/reports/locust\.json"):
        fleet.run(api, SHORT, traffic, tmp_path / "out")
    assert set(_statuses(ecs, run[0]).values()) == {"STOPPED"}


def test_a_master_that_does_not_end_in_time_is_stopped_with_its_workers(
    account, api, traffic, tmp_path, moto_endpoint
):
    ecs, _, _ = account
    local = LocalEcs(ecs, moto_endpoint, roles=())  # started, never ending
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        time.sleep(seconds)

    one_second = SHORT.model_copy(update={"duration_s": 1})
    sized: list = []

    def workers_for(profile, traffic_file) -> int:  # as composition sizes it, from the rate
        sized.append((profile, traffic_file))
        return 12

    fleet = _fleet(
        account, local, workers=1, wait_s=1, stop_margin_s=1, sleep=sleep,
        traffic_path=tmp_path / "t.jsonl", report_prefix=tmp_path / "r", workers_for=workers_for,
    )  # fmt: skip

    with pytest.raises(FleetTimedOut, match="did not end within 3 s"):
        fleet.run(api, one_second, traffic, tmp_path / "out")

    # It gave up at its deadline: 3 s of 0.1-s pauses (fewer when the machine is slow).
    assert len(polls) <= 3 / 0.1 + 5
    assert sized == [(one_second, traffic)]
    assert len(local.run.workers) == 12  # sized per run, in two RunTask calls, 10 and 2
    assert set(_statuses(ecs, local.run).values()) == {"STOPPED"}


def test_the_task_entrypoint_without_its_traffic_fails_naming_it(moto_endpoint, tmp_path):
    env = {
        **os.environ,
        "FEARLESS_AWS_ENDPOINT_URL": moto_endpoint,
        "FEARLESS_TRAFFIC": str(tmp_path / "traffic.jsonl"),
    }
    missing = f"s3://{BUCKET}/loadgen/{RELEASE}/nothing/traffic.jsonl"
    argv = [sys.executable, "-m", "fearless.loadtest.fleet_task", "worker", "--traffic", missing]
    done = subprocess.run(
        [*argv, "--", sys.executable, "-c", "print('locust ran')"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"fleet_task worker: cannot fetch the traffic {missing}" in done.stderr
    assert "locust ran" not in done.stdout


def test_a_releases_teardown_stops_the_load_generator_tasks_a_lost_run_left(
    account, moto_endpoint, tmp_path
):
    """The flow run was lost mid-test, so `EcsFleet` never stopped its tasks: the release's
    teardown (the ECS environments backend) finds them by who started them and their release
    tag, and leaves another release's running."""
    from fearless.environments.ecs.backend import EcsEnvironments
    from fearless.environments.ecs.config import LOADGEN_STARTED_BY, EcsConfig

    ecs, _, tasks = account
    plan = LocustFleet(1)

    def started(release_id: str) -> str:
        fleet = EcsFleet(tasks, plan, ecs, None, BUCKET, release_id)
        request = fleet.tasks.master_request(plan, "http://api", SHORT, "s3://b/t", "s3://b/r")
        assert request["startedBy"] == LOADGEN_STARTED_BY  # the name the teardown looks for
        return ecs.run_task(**request)["tasks"][0]["taskArn"]

    mine, other = started("credit-lost"), started("credit-other")
    discovery = boto3.client("servicediscovery", region_name=AWS_REGION, endpoint_url=moto_endpoint)
    config = EcsConfig(
        region=AWS_REGION, cluster=CLUSTER, subnets=tasks.subnets,
        security_groups=tasks.security_groups, image_repository="r", namespace_id="ns",
        execution_role_arn="arn:aws:iam::123456789012:role/x",
        task_role_arn="arn:aws:iam::123456789012:role/y", log_group="/l", creator="tests",
    )  # fmt: skip
    try:
        EcsEnvironments(config, ecs, discovery, tmp_path).teardown("credit-lost")
        described = ecs.describe_tasks(cluster=CLUSTER, tasks=[mine, other])["tasks"]
        status = {t["taskArn"]: t["lastStatus"] for t in described}
        assert status == {mine: "STOPPED", other: "RUNNING"}
    finally:
        ecs.stop_task(cluster=CLUSTER, task=other, reason="test over")
