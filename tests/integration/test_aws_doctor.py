"""`fearless doctor --aws` end to end against moto, with a real model API standing in for the
tasks moto cannot run.

What moto cannot do, and how each check is covered here instead:
- run a container: the environment's and production's model API is a real `fearless.serving`
  process on this machine, shipping its inference log to moto's S3 as the task would (the
  doctor's `reach` maps the task's URL to it); ECS's health waiters are replaced;
- start an awsvpc flow-run task through prefect-aws: a plain task tagged with the flow run's id,
  with its log stream, stands in (test_aws_flow_run_task.py checks prefect-aws's own requests);
- resolve DNS: the name is looked up in moto's Cloud Map instead;
- roll a deployment or route through an ALB: the promotion's calls run on moto's service, and
  its URL (the service's fearless:url tag) is reached at the model API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from typer.testing import CliRunner

from fearless.aws.inference_logs import environment_logs
from fearless.bundles.bundle import build_bundle
from fearless.composition import build_services
from fearless.environments.ecs.config import CONTAINER, DIGEST_VARIABLE
from fearless.environments.ecs.doctor import AwsDoctor
from fearless.registry.local import LocalRegistry
from fearless.settings import Settings
from tests.integration.conftest import stop_processes
from tests.integration.test_aws_ecr import push_manifest
from tests.integration.test_loadtest_runner import _free_port, _wait_ready

REGION, CLUSTER, BUCKET, RELEASE = "us-east-1", "doctor", "fearless-doctor", "doctor-0101"
LOG_GROUP = "/fearless/doctor"


@pytest.fixture(scope="module")
def account(moto_endpoint, credit_project, tmp_path_factory):
    """What `terraform apply` leaves, on moto, and the settings it exports."""

    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    bundle = build_bundle(credit_project, LocalRegistry(tmp_path_factory.mktemp("registry")))
    ecr, ec2, discovery = make("ecr"), make("ec2"), make("servicediscovery")
    repository = ecr.create_repository(repositoryName="fearless-doctor")["repository"]
    push_manifest(ecr, "fearless-doctor", bundle.short_digest)
    vpc = ec2.create_vpc(CidrBlock="10.4.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.4.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="doc", Description="doc", VpcId=vpc)["GroupId"]
    make("ecs").create_cluster(clusterName=CLUSTER)
    make("s3").create_bucket(Bucket=BUCKET)
    make("logs").create_log_group(logGroupName=LOG_GROUP)
    discovery.create_private_dns_namespace(Name="doctor.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("state"),
        backend="aws",
        aws_endpoint_url=moto_endpoint,
        aws_region=REGION,
        aws_cluster=CLUSTER,
        aws_subnets=[subnet],
        aws_security_groups=[group],
        aws_ecr_repository=repository["repositoryUri"],
        aws_bucket=BUCKET,
        aws_log_group=LOG_GROUP,
        aws_namespace_id=next(n["Id"] for n in namespaces if n["Name"] == "doctor.internal"),
        aws_execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        aws_task_role_arn="arn:aws:iam::123456789012:role/fearless-model-api",
    )
    return settings, bundle, make


@pytest.fixture(scope="module")
def model_api(account, tmp_path_factory):
    """The model API a test environment's task would run, shipping where the task would."""
    settings, bundle, _ = account
    port = _free_port()
    where = environment_logs(BUCKET, settings.aws_inference_prefix, RELEASE, "candidate")
    env = {
        **os.environ,
        "FEARLESS_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "FEARLESS_INFERENCE_LOG_S3": where.url,
        "FEARLESS_RUN_ID": RELEASE,
        "FEARLESS_AWS_REGION": REGION,
    }
    argv = [sys.executable, "-m", "fearless.serving", "--bundle", str(bundle.path)]
    argv += ["--port", str(port), "--log-dir", str(tmp_path_factory.mktemp("log"))]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url, timeout_s=60)
        yield url
    finally:
        stop_processes(proc)


def flow_run_stand_in(make, flow_run_id: str):
    """What the ECS worker does for a flow run, as far as moto runs it: a task tagged with the
    flow run's id (prefect-aws tags each task with its labels) and its log stream. Done off the
    doctor's stack (a thread): these are the worker's and ECS's calls, not the doctor's."""

    def start() -> str:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(run).result()

    def run() -> str:
        ecs = make("ecs")
        plain = ecs.register_task_definition(
            family="doctor-flow-run",
            containerDefinitions=[{"name": "prefect", "image": "flows", "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
        tags = [{"key": "prefect.io/flow-run-id", "value": flow_run_id}]
        task = ecs.run_task(cluster=CLUSTER, taskDefinition=plain, launchType="FARGATE", tags=tags)
        task_id = task["tasks"][0]["taskArn"].split("/")[-1]
        stream = f"flow-runs/prefect/{task_id}"
        make("logs").create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        return flow_run_id

    return start


def production_service(make, settings, bundle) -> None:
    """`credit-production` as infra/modules/production_service creates it (fearless:url tag)."""
    ecs = make("ecs")
    image = f"{settings.aws_ecr_repository}:{bundle.short_digest}"
    registered = ecs.register_task_definition(
        family="credit-production",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": image,
                "environment": [{"name": DIGEST_VARIABLE, "value": bundle.digest}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(
        cluster=CLUSTER,
        serviceName="credit-production",
        taskDefinition=registered,
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": settings.aws_subnets,
                "securityGroups": settings.aws_security_groups,
            }
        },
        tags=[{"key": "fearless:url", "value": "https://credit.fearless.internal"}],
    )


def test_the_doctor_passes_every_check_on_a_working_account_and_leaves_nothing(account, model_api):
    settings, bundle, make = account
    production_service(make, settings, bundle)
    services = build_services(settings)
    services.environments.waiter = lambda env: None  # moto runs no container to get healthy
    services.production.inner.waiter = lambda instance: None
    discovery = make("servicediscovery")

    def in_cloud_map(host: str) -> str:
        names = [s["Name"] for s in discovery.list_services()["Services"]]
        assert host.split(".")[0] in names
        return "registered in Cloud Map"

    lines = []
    results = AwsDoctor(
        environments=services.environments,
        production=services.production.inner,  # not recorded on a Prefect server here
        logs=make("logs"),
        bundle=bundle,
        start_flow_run=flow_run_stand_in(make, "0d0c7e57-flow-run"),
        flow_log_group=LOG_GROUP,
        reach=lambda url: model_api,
        resolve=in_cloud_map,
        secrets=("user:doctor-password",),
        release_id=RELEASE,
    ).run(lines.append)

    assert [r.status for r in results] == ["ok"] * 6, "\n".join(lines)
    assert len(lines) == 6 and all(line.startswith("ok   ") for line in lines)
    assert services.environments.inventory.found(RELEASE) == []


def test_a_secret_in_describe_tasks_fails_its_check_naming_it(account):
    settings, bundle, make = account
    ecs = make("ecs")
    plain = ecs.register_task_definition(
        family="doctor-leaky",
        containerDefinitions=[{"name": "prefect", "image": "flows", "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    leaked = {"name": "PREFECT_API_AUTH_STRING", "value": "user:doctor-password"}
    overrides = {"containerOverrides": [{"name": "prefect", "environment": [leaked]}]}
    started = ecs.run_task(
        cluster=CLUSTER, taskDefinition=plain, overrides=overrides, launchType="FARGATE"
    )
    task = started["tasks"][0]
    doctor = AwsDoctor(
        environments=build_services(settings).environments,
        production=None,
        logs=make("logs"),
        bundle=bundle,
        start_flow_run=lambda: "",
        flow_log_group=LOG_GROUP,
        secrets=("user:doctor-password",),
    )
    doctor._tasks.append(ecs.describe_tasks(cluster=CLUSTER, tasks=[task["taskArn"]])["tasks"][0])
    try:
        with pytest.raises(RuntimeError, match="PREFECT_API_AUTH_STRING, a secret value"):
            doctor.check_no_secret()
    finally:
        ecs.stop_task(cluster=CLUSTER, task=task["taskArn"])


def test_the_command_refuses_without_aws_naming_what_it_needs():
    from fearless.cli import app

    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 2 and "--aws" in result.output
