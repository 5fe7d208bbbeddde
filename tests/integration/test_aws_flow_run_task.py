"""A flow run's ECS task as prefect-aws's worker starts it from the committed pool template,
against moto: the RegisterTaskDefinition and RunTask requests it sends, read as AWS gets them.

The Prefect auth string reaches the task only as an ECS secret (never an environment value,
which DescribeTasks and CloudTrail show), the task runs in the worker's security group, and
its log configuration asks for nothing the execution role is not granted."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fearless.platform.work_pools import ecs_job_variables, ecs_template_for
from fearless.settings import Settings
from fearless.spec import Resources
from tests.integration.conftest import AWS_REGION
from tests.unit.iam_policies import LOG_GROUPS, grants, role_statements

AUTH = "fearless:correct-horse-battery-staple"


@pytest.fixture(scope="module")
def started(moto_endpoint):
    """The requests the worker sent for one flow run, and DescribeTasks of its task."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration, ECSWorker

    ec2 = boto3.client("ec2", region_name=AWS_REGION, endpoint_url=moto_endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    worker_sg = ec2.create_security_group(GroupName="w", Description="worker", VpcId=vpc)
    sm = boto3.client("secretsmanager", region_name=AWS_REGION, endpoint_url=moto_endpoint)
    secret = sm.create_secret(Name="fearless/prefect-auth", SecretString=AUTH)["ARN"]
    ecs = boto3.client(
        "ecs",
        region_name=AWS_REGION,
        endpoint_url=moto_endpoint,
        config=Config(retries={"max_attempts": 1}),
    )
    ecs.create_cluster(clusterName="flows")
    settings = Settings(
        backend="aws",
        aws_cluster="flows",
        aws_subnets=[subnet],
        aws_security_groups=["sg-environments"],
        aws_flow_security_groups=[worker_sg["GroupId"]],
        aws_vpc_id=vpc,
        aws_ecr_repository="fearless-models",
        aws_bucket="fearless-registry",
        aws_namespace_id="ns-1",
        aws_execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        aws_task_role_arn="arn:aws:iam::123456789012:role/fearless-model-api",
        aws_flow_task_role_arn="arn:aws:iam::123456789012:role/fearless-worker",
        aws_prefect_auth_secret_arn=secret,
        aws_log_group="/fearless/environments",
    )
    template = ecs_template_for(settings)
    # moto accounts a task's memory by container (AWS takes the task's): give it one
    template["job_configuration"]["task_definition"]["containerDefinitions"][0]["memory"] = (
        "{{ memory }}"
    )
    values = {
        **ecs_job_variables(Resources(cpu=1, memory_mb=2048)),
        "aws_credentials": {
            "region_name": AWS_REGION,
            "aws_client_parameters": {"endpoint_url": moto_endpoint},
        },
        "labels": {"fearless:release-id": "credit-1234"},
    }
    sent: dict[str, list[dict]] = {}
    ecs.meta.events.register(
        "before-parameter-build.ecs.*",
        lambda model, params, **_: sent.setdefault(model.name, []).append(params),
    )
    flow_run = FlowRun(flow_id=uuid.uuid4(), deployment_id=uuid.uuid4(), name="brave-otter")
    with temporary_settings({PREFECT_API_AUTH_STRING: AUTH}):  # the worker holds it
        config = asyncio.run(ECSJobConfiguration.from_template_and_values(template, values))
        config.prepare_for_flow_run(flow_run)
        worker = ECSWorker(work_pool_name="fearless-ecs")
        worker._wait_for_task_start = lambda *a, **k: None  # moto runs no container
        try:
            task_arn, *_ = worker._create_task_and_wait_for_start(
                logging.getLogger("test"), ecs, config, flow_run
            )
            described = ecs.describe_tasks(cluster="flows", tasks=[task_arn])
        except ClientError:  # moto 5.2 fails an awsvpc RunTask; the request is what matters
            described = {}
    return sent, described, secret, worker_sg["GroupId"]


def test_the_auth_string_reaches_the_task_only_as_an_ecs_secret(started):
    sent, described, secret, _ = started
    (registered,) = sent["RegisterTaskDefinition"]
    (container,) = registered["containerDefinitions"]
    assert {"name": "PREFECT_API_AUTH_STRING", "valueFrom": secret} in container["secrets"]
    run = sent["RunTask"][-1]  # prefect-aws retries a failed RunTask
    for where in (registered, run, described):
        assert AUTH not in json.dumps(where, default=str)
    overrides = run["overrides"]["containerOverrides"][0]["environment"]
    assert "PREFECT_API_AUTH_STRING" not in {e["name"] for e in overrides}


def test_without_a_secret_the_workers_auth_string_is_not_passed_on(moto_endpoint):
    settings = Settings(
        backend="aws",
        aws_cluster="c",
        aws_subnets=["s"],
        aws_security_groups=["sg"],
        aws_flow_security_groups=["sg-w"],
        aws_ecr_repository="r",
        aws_bucket="b",
        aws_namespace_id="n",
        aws_execution_role_arn="arn:aws:iam::1:role/e",
        aws_task_role_arn="arn:aws:iam::1:role/t",
    )
    env = ecs_template_for(settings)["variables"]["properties"]["env"]["default"]
    assert env["PREFECT_API_AUTH_STRING"] is None  # prefect-aws drops a None, never sends it


def test_the_flow_run_task_runs_in_the_worker_security_group_and_is_tagged(started):
    sent, _, _, worker_sg = started
    run = sent["RunTask"][-1]  # prefect-aws retries a failed RunTask
    assert run["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [worker_sg]
    assert {"key": "fearless:release-id", "value": "credit-1234"} in run["tags"]


def test_the_execution_role_may_do_what_the_log_configuration_asks(started):
    """prefect-aws adds awslogs-create-group: the execution role must be able to create it."""
    sent, *_ = started
    (container,) = sent["RegisterTaskDefinition"][0]["containerDefinitions"]
    options = container["logConfiguration"]["options"]
    group = next(g for g in LOG_GROUPS if g.endswith(options["awslogs-group"]))
    execution = role_statements("execution")
    if options.get("awslogs-create-group") == "true":
        assert grants(execution, "logs:CreateLogGroup", group)
    assert grants(execution, "logs:CreateLogStream", f"{group}:log-stream:flow-runs/x")
    assert grants(execution, "secretsmanager:GetSecretValue")
