"""Production on ECS as Terraform leaves it, in a moto account: shared by the tests of
deployments to it (test_aws_production) and of a bake's shadow beside it (test_aws_shadow)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from fearless.bundles.bundle import Bundle
from fearless.environments.ecs.config import DIGEST_VARIABLE, EcsConfig
from fearless.spec import ModelSpec

REGION = "us-east-1"
BOOTSTRAP = "sha256:" + "00" * 32
DIGEST = "sha256:" + "ab" * 32


def ecs_account(moto_endpoint: str, cluster: str) -> tuple[EcsConfig, Any, Any, Any]:
    """(config, ecs, servicediscovery, application-autoscaling) of a moto account holding
    `cluster`, a VPC and the environments' Cloud Map namespace `<cluster>.internal`."""

    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    ecs, discovery, ec2 = make("ecs"), make("servicediscovery"), make("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="prod", Description="prod", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=cluster)
    discovery.create_private_dns_namespace(Name=f"{cluster}.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    config = EcsConfig(
        region=REGION,
        cluster=cluster,
        subnets=[subnet],
        security_groups=[group],
        image_repository="123456789012.dkr.ecr.us-east-1.amazonaws.com/fearless-models",
        namespace_id=next(n["Id"] for n in namespaces if n["Name"].startswith(cluster)),
        execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        task_role_arn="arn:aws:iam::123456789012:role/fearless-task",
        log_group="/fearless/environments",
        creator="tests",
    )
    return config, ecs, discovery, make("application-autoscaling")


@contextlib.contextmanager
def production_service(
    config: EcsConfig, ecs, autoscaling, url: str = "https://credit.models.internal"
) -> Iterator[str]:
    """`credit-production` as Terraform creates it: a bigger task, its own variables and logs
    (its running task definition's ARN); removed after, with what switches registered."""
    container = {
        "name": "model-api",
        "image": f"{config.image_repository}:bootstrap",
        "essential": True,
        "portMappings": [{"containerPort": 8080, "protocol": "tcp"}],
        "environment": [
            {"name": "FEARLESS_TRUST_PICKLE", "value": "false"},
            {"name": DIGEST_VARIABLE, "value": BOOTSTRAP},
        ],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "/fearless/production", "awslogs-stream-prefix": "prod"},
        },
    }
    arn = ecs.register_task_definition(
        family="credit-production",
        taskRoleArn="arn:aws:iam::123456789012:role/fearless-model-api",
        executionRoleArn=config.execution_role_arn,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="2048",
        containerDefinitions=[container],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"subnets": config.subnets, "securityGroups": config.security_groups}
    ecs.create_service(
        cluster=config.cluster,
        serviceName="credit-production",
        taskDefinition=arn,
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {**network, "assignPublicIp": "DISABLED"}},
        tags=[{"key": "fearless:url", "value": url}],
    )
    yield arn
    ecs.delete_service(cluster=config.cluster, service="credit-production", force=True)
    family = {"familyPrefix": "credit-production"}
    listed = [ecs.list_task_definitions(**family, status=s) for s in ("ACTIVE", "INACTIVE")]
    revisions = [arn for page in listed for arn in page["taskDefinitionArns"]]
    for revision in revisions:
        ecs.deregister_task_definition(taskDefinition=revision)
    ecs.delete_task_definitions(taskDefinitions=revisions)
    target = {
        "ServiceNamespace": "ecs",
        "ScalableDimension": "ecs:service:DesiredCount",
        "ResourceId": f"service/{config.cluster}/credit-production",
    }
    with contextlib.suppress(ClientError):  # only the tests that switched registered these
        autoscaling.delete_scaling_policy(**target, PolicyName="credit-production-cpu")
        autoscaling.deregister_scalable_target(**target)


def bundle(tmp_path, memory_mb=1000, digest=DIGEST) -> Bundle:
    files = {"model": "model.joblib", "reference_data": "reference.parquet"}
    resources = {"cpu": 0.5, "memory_mb": memory_mb}
    spec = {"name": "credit", **files, "schema": {"age": {"type": "int"}}, "resources": resources}
    return Bundle(path=tmp_path, digest=digest, spec=ModelSpec.model_validate(spec))


def in_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def describe(ecs, arn: str) -> dict:
    return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
