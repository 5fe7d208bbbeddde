"""The calls the backend makes are recorded with their role, and a grant taken out of infra/'s
policies is caught (every moto test is checked so by conftest's only_granted_aws_calls)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from fearless.bundles.bundle import Bundle
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import EcsConfig
from fearless.spec import ModelSpec
from tests.unit.iam_policies import role_statements, ungranted

REGION = "us-east-1"


@pytest.fixture(scope="module")
def backend(moto_endpoint, tmp_path_factory):
    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    ecs, discovery, ec2 = make("ecs"), make("servicediscovery"), make("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.3.1.0/24")["Subnet"]["SubnetId"]
    ecs.create_cluster(clusterName="granted")
    discovery.create_private_dns_namespace(Name="granted.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    config = EcsConfig(
        region=REGION,
        cluster="granted",
        subnets=[subnet],
        security_groups=[],
        image_repository="123456789012.dkr.ecr.us-east-1.amazonaws.com/fearless-models",
        namespace_id=next(n["Id"] for n in namespaces if n["Name"] == "granted.internal"),
        execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        task_role_arn="arn:aws:iam::123456789012:role/fearless-model-api",
        log_group="/fearless/environments",
        creator="tests",
        bucket="fearless-granted",
    )
    make("s3").create_bucket(Bucket="fearless-granted")
    root = tmp_path_factory.mktemp("runs")
    return EcsEnvironments(config, ecs, discovery, root, waiter=lambda env: None, s3=make("s3"))


def test_a_provision_and_teardown_are_recorded_as_the_worker_and_execution_roles(
    backend, aws_calls, tmp_path
):
    start = len(aws_calls.calls)
    spec = {"name": "credit", "model": "m.joblib", "reference_data": "r.parquet"}
    spec = ModelSpec.model_validate({**spec, "schema": {"age": {"type": "int"}}})
    bundle = Bundle(path=tmp_path, digest="sha256:" + "ab" * 32, spec=spec)
    env = backend.provision("credit-0301", "candidate", bundle, datetime.now(UTC) + timedelta(1))
    backend.inference_log_dir(env)
    backend.teardown("credit-0301")

    calls = {(c.role, c.action) for c in aws_calls.calls[start:]}
    worker = {
        "ecs:RegisterTaskDefinition",
        "ecs:CreateService",
        "ecs:DeleteService",
        "ecs:ListTagsForResource",
        "servicediscovery:CreateService",
        "servicediscovery:DeleteService",
        "iam:PassRole",
        "s3:ListBucket",
    }
    assert {("worker", a) for a in worker} <= calls
    execution = {"ecr:BatchGetImage", "logs:CreateLogStream", "logs:PutLogEvents"}
    assert {("execution", a) for a in execution} <= calls
    assert ungranted(calls) == set()

    def without_create_service(role: str) -> list[dict]:
        statements = role_statements(role)
        for st in statements:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            st["Action"] = [a for a in actions if a != "ecs:CreateService"]
        return statements

    assert ungranted(calls, without_create_service) == {("worker", "ecs:CreateService")}
