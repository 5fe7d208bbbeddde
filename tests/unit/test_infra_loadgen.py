"""The load generator on AWS (infra/modules/load_generator) is what fearless.loadtest.ecs_fleet
starts: its task definition, the role its tasks run as, and what a flow run may do with them,
checked on the keys and requests EcsFleet really makes (fakes for ECS and S3, no network)."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from pathlib import Path

import pytest

from fearless.aws.prices import fargate_size
from fearless.loadtest import ecs_fleet
from fearless.loadtest.ecs_fleet import EcsFleet, EcsFleetTasks, ReportsMissing
from fearless.loadtest.fleet import LocustFleet
from fearless.spec import LoadProfile
from tests.unit.iam_policies import (
    ACCOUNT,
    NAME,
    REGION,
    SAMPLE,
    grants,
    role_statements,
)
from tests.unit.test_infra import INFRA, one, parsed, resource

LOADGEN = INFRA / "modules" / "load_generator"
EXAMPLE = INFRA / "examples" / "complete"
BUCKET = SAMPLE["var.bucket_arn"].removeprefix("arn:aws:s3:::")
FAMILY = f"{NAME}-loadgen"
LOAD = LoadProfile(profile="steady", users=4, spawn_rate=100, duration_s=3, batch_size=2)


def _defaults(folder: Path) -> dict:
    return {
        n: one(b.get("default")) for item in parsed(folder)["variable"] for n, b in item.items()
    }


def _example_module(name: str) -> dict:
    return next(b for item in parsed(EXAMPLE)["module"] for n, b in item.items() if n == name)


def _container() -> dict:
    raw = one(resource(LOADGEN, "aws_ecs_task_definition")["container_definitions"])
    return ast.literal_eval(raw.removeprefix("${jsonencode(").removesuffix(")}"))[0]


def test_the_task_definition_is_the_one_ecs_fleet_overrides():
    """One Locust process per Fargate task (1 vCPU, 2 GB), the container EcsFleetTasks names,
    awsvpc (each task its own IP: workers dial the master's), /tmp writable for the traffic and
    the reports on a read-only root filesystem, logs to CloudWatch, no secret."""
    definition = resource(LOADGEN, "aws_ecs_task_definition")
    assert one(definition["family"]).replace("${var.name}", NAME) == FAMILY
    assert one(definition["network_mode"]) == "awsvpc"
    assert one(definition["requires_compatibilities"]) == ["FARGATE"]
    assert (one(definition["cpu"]), one(definition["memory"])) == ("${var.cpu}", "${var.memory}")
    size = fargate_size(1.0, 2048)
    assert (_defaults(LOADGEN)["cpu"], _defaults(LOADGEN)["memory"]) == (
        size.cpu_units,
        size.memory_mib,
    )
    defaults = {f.name: f.default for f in fields(EcsFleetTasks)}
    container = _container()
    assert container["name"] == defaults["container"]
    assert container["image"] == "${var.image}"
    assert container["readonlyRootFilesystem"] is True
    (mount,) = container["mountPoints"]
    assert (mount["containerPath"], mount["readOnly"]) == ("/tmp", False)
    assert one(one(definition["volume"])["name"]) == mount["sourceVolume"]
    for path in (defaults["traffic_path"], defaults["report_prefix"]):
        assert Path(path).is_relative_to(mount["containerPath"]), path
    assert "secrets" not in container
    assert [e["name"] for e in container["environment"]] == ["FEARLESS_AWS_REGION"]
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "${var.log_group_name}"
    assert one(definition["task_role_arn"]) == "${aws_iam_role.this.arn}"


def test_the_example_runs_it_from_the_flow_image_with_the_shared_execution_role():
    module = _example_module("load_generator")
    assert one(module["image"]) == "${var.flow_image}"
    assert one(module["execution_role_arn"]) == "${module.ecs.execution_role_arn}"
    assert one(module["log_group_name"]) == '${module.ecs.log_group_names["loadgen"]}'
    groups = one(resource(INFRA / "modules" / "ecs", "aws_cloudwatch_log_group")["for_each"])
    assert "'loadgen'" in groups  # one of the groups the execution role may write to
    worker = _example_module("prefect_worker")
    assert one(worker["loadgen_task_role_arn"]) == "${module.load_generator.task_role_arn}"
    role = resource(LOADGEN, "aws_iam_role")
    assert SAMPLE["var.loadgen_task_role_arn"].endswith(
        "/" + one(role["name"]).replace("${var.name}", NAME)
    )


class _Ecs:
    """ECS as EcsFleet sees it: every task starts with an IP, the master ends with exit code 0."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.tasks: list[str] = []
        self.described = 0

    def run_task(self, **request) -> dict:
        self.requests.append(request)
        arns = [
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{NAME}/{len(self.tasks) + i:032x}"
            for i in range(request["count"])
        ]
        self.tasks += arns
        return {"tasks": [{"taskArn": a} for a in arns]}

    def describe_tasks(self, cluster: str, tasks: list[str]) -> dict:
        self.described += 1
        ip = {"details": [{"name": "privateIPv4Address", "value": "10.0.1.7"}]}
        if self.described == 1:
            return {"tasks": [{"lastStatus": "RUNNING", "attachments": [ip]}]}
        return {
            "tasks": [{"lastStatus": "STOPPED", "containers": [{"name": "locust", "exitCode": 0}]}]
        }

    def stop_task(self, cluster: str, task: str, reason: str) -> None:
        pass


class _S3:
    def __init__(self) -> None:
        self.uploaded: list[str] = []
        self.listed: list[str] = []

    def upload_file(self, path: str, bucket: str, key: str) -> None:
        self.uploaded.append(key)

    def list_objects_v2(self, Bucket: str, Prefix: str) -> dict:
        self.listed.append(Prefix)
        return {}


@pytest.fixture
def fleet_run(monkeypatch, tmp_path):
    """The requests and keys of one EcsFleet run of 12 workers (two RunTask calls for them)."""
    monkeypatch.setattr(ecs_fleet, "check_target", lambda url: None)
    ecs, s3 = _Ecs(), _S3()
    tasks = EcsFleetTasks(NAME, FAMILY, ["subnet-1"], ["sg-1"])
    fleet = EcsFleet(tasks, LocustFleet(12), ecs, s3, BUCKET, "credit-7", sleep=lambda s: None)
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("{}\n")
    with pytest.raises(ReportsMissing):  # the fake master uploads nothing
        fleet.run("http://credit-candidate:8080", LOAD, traffic, tmp_path / "out")
    return ecs, s3


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _object(key: str) -> str:
    return f"{SAMPLE['var.bucket_arn']}/{key}"


def test_the_tasks_role_reads_only_the_runs_objects_and_writes_only_their_reports(fleet_run):
    ecs, _ = fleet_run
    commands = [r["overrides"]["containerOverrides"][0]["command"] for r in ecs.requests]
    traffic = {_flag(c, "--traffic") for c in commands}
    assert len(traffic) == 1  # master and workers read the same object
    (traffic_key,) = (t.removeprefix(f"s3://{BUCKET}/") for t in traffic)
    reports = _flag(commands[0], "--reports").removeprefix(f"s3://{BUCKET}/")
    loadgen = role_statements("loadgen")
    assert grants(loadgen, "s3:GetObject", _object(traffic_key))
    assert grants(loadgen, "s3:PutObject", _object(f"{reports}/locust.json"))
    assert not grants(loadgen, "s3:PutObject", _object(traffic_key))
    for elsewhere in ("registry/credit/aliases/production.json", "inference/production/x.jsonl"):
        assert not grants(loadgen, "s3:GetObject", _object(elsewhere)), elsewhere
        assert not grants(loadgen, "s3:PutObject", _object(elsewhere)), elsewhere
    held = {a.lower() for st in loadgen for a in st["Action"]}
    assert held == {"s3:getobject", "s3:putobject", "kms:decrypt", "kms:generatedatakey"}
    for st in loadgen:
        if any(a.startswith("s3:") for a in st["Action"]):
            assert all(r.startswith(_object("loadgen/")) for r in st["Resource"]), st
        else:  # the bucket's key, for S3's calls alone (it also guards logs, images, queue)
            via = {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}
            assert (st["Resource"], st.get("Condition")) == ([SAMPLE["var.kms_key_arn"]], via)
    fleet_prefix = inspect.signature(EcsFleet).parameters["prefix"].default
    assert _defaults(LOADGEN)["s3_prefix"] == fleet_prefix == traffic_key.split("/")[0]


def test_the_flows_may_start_stop_and_read_the_load_generator(fleet_run):
    """The worker role (every flow run) runs the task definition, passing its roles to ECS,
    watches and stops its tasks, puts the traffic and gets the reports back."""
    ecs, s3 = fleet_run
    assert len(ecs.requests) == 3 and {r["taskDefinition"] for r in ecs.requests} == {FAMILY}
    definition = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{FAMILY}:1"
    (traffic_key,) = s3.uploaded
    (reports,) = s3.listed
    calls = [
        ("ecs:RunTask", definition),
        ("iam:PassRole", SAMPLE["var.loadgen_task_role_arn"]),
        ("iam:PassRole", SAMPLE["var.execution_role_arn"]),
        ("s3:PutObject", _object(traffic_key)),
        ("s3:ListBucket", SAMPLE["var.bucket_arn"]),
        ("s3:GetObject", _object(f"{reports}locust.json")),
    ]
    calls += [
        (a, t) for t in ecs.tasks for a in ("ecs:TagResource", "ecs:DescribeTasks", "ecs:StopTask")
    ]
    worker = role_statements("worker")
    missing = [(a, r) for a, r in calls if not grants(worker, a, r)]
    assert not missing, missing
    (pass_role,) = [st for st in worker if st["Action"] == ["iam:PassRole"]]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def test_the_example_outputs_the_family_fearless_runs_tasks_of():
    """Its family, not a revision's ARN: RunTask takes the latest revision of a family, so the
    setting stays right when the flow image (and so the revision) changes."""
    outputs = {n: b for item in parsed(LOADGEN)["output"] for n, b in item.items()}
    assert one(outputs["task_definition_family"]["value"]) == (
        "${one(aws_ecs_task_definition.this[*].family)}"
    )
    example = {n: b for item in parsed(EXAMPLE)["output"] for n, b in item.items()}
    exported = one(example["fearless_env"]["value"])["FEARLESS_AWS_LOADGEN_TASK_DEFINITION"]
    assert "module.load_generator.task_definition_family" in exported  # "" while it is null
    assert '""' in exported
    assert "FEARLESS_AWS_LOADGEN_TASK_DEFINITION" in (INFRA / "README.md").read_text()
