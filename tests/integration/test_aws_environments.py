"""The ECS backend against a moto server: every resource tagged, and nothing left behind.

Moto runs no containers, so these tests skip the health waiter; serving HTTP is covered by
the local backend's tests. Bundle images are pushed to moto's ECR as bare manifests.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from fearless.aws import TAG_PREFIX, tag_dict
from fearless.bundles.bundle import Bundle
from fearless.environments import EnvironmentError_
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import EcsConfig
from fearless.environments.janitor import sweep
from fearless.spec import ModelSpec
from tests.integration.test_aws_ecr import push_manifest

REGION = "us-east-1"
REQUIRED_TAGS = {"release-id", "model", "digest", "expires-at", "creator"}
REPOSITORY = "fearless-environments"
PUSHED = ("abababababab", "cdcdcdcdcdcd")  # the images of the bundles these tests provision
UNPUSHED = "sha256:" + "ef" * 32


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    ecs, discovery, ec2, ecr = make("ecs"), make("servicediscovery"), make("ec2"), make("ecr")
    repository = ecr.create_repository(repositoryName=REPOSITORY)["repository"]["repositoryUri"]
    for tag in PUSHED:
        push_manifest(ecr, REPOSITORY, tag)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="envs", Description="envs", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="fearless")
    discovery.create_private_dns_namespace(Name="fearless.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    namespace = next(n["Id"] for n in namespaces if n["Name"] == "fearless.internal")
    config = EcsConfig(
        region=REGION,
        cluster="fearless",
        subnets=[subnet],
        security_groups=[group],
        image_repository=repository,
        namespace_id=namespace,
        execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        task_role_arn="arn:aws:iam::123456789012:role/fearless-task",
        log_group="/fearless/environments",
        creator="tests",
    )
    return config, ecs, discovery, ecr


@pytest.fixture
def backend(aws, tmp_path):
    config, ecs, discovery, ecr = aws
    backend = EcsEnvironments(config, ecs, discovery, tmp_path, ecr=ecr, waiter=lambda env: None)
    yield backend
    for env in backend.list():
        backend.teardown(env.release_id)


def bundle(tmp_path, digest="sha256:" + "ab" * 32) -> Bundle:
    spec = ModelSpec.model_validate(
        {
            "name": "credit",
            "model": "model.joblib",
            "reference_data": "reference.parquet",
            "schema": {"age": {"type": "int"}},
            "resources": {"cpu": 0.5, "memory_mb": 1000},
        }
    )
    return Bundle(path=tmp_path, digest=digest, spec=spec)


def resources(aws) -> dict[str, dict]:
    """Every ECS service, task definition and Cloud Map service that exists, with its tags."""
    config, ecs, discovery, _ = aws
    found = {}
    for arn in ecs.list_services(cluster=config.cluster)["serviceArns"]:
        service = ecs.describe_services(cluster=config.cluster, services=[arn])["services"][0]
        if service["status"] == "ACTIVE":
            found[arn] = tag_dict(ecs.list_tags_for_resource(resourceArn=arn)["tags"])
    for family in ecs.list_task_definition_families()["families"]:
        for status in ("ACTIVE", "INACTIVE"):
            for arn in ecs.list_task_definitions(familyPrefix=family, status=status)[
                "taskDefinitionArns"
            ]:
                found[arn] = tag_dict(ecs.list_tags_for_resource(resourceArn=arn)["tags"])
    for service in discovery.list_services()["Services"]:
        tags = discovery.list_tags_for_resource(ResourceARN=service["Arn"])["Tags"]
        found[service["Arn"]] = tag_dict(tags)
    return found


def in_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def test_provision_tags_every_resource_and_teardown_twice_leaves_nothing(aws, backend, tmp_path):
    env = backend.provision("credit-0001", "candidate", bundle(tmp_path), in_hour())
    assert env.url == "http://candidate-credit-0001.fearless.internal:8080"
    created = resources(aws)
    assert len(created) == 3
    for arn, tags in created.items():
        assert {f"{TAG_PREFIX}{k}" for k in REQUIRED_TAGS} <= set(tags), arn
        assert tags[f"{TAG_PREFIX}release-id"] == "credit-0001"
    definition = aws[1].describe_task_definition(taskDefinition=env.handle["task_definition_arn"])
    task = definition["taskDefinition"]
    assert (task["cpu"], task["memory"]) == ("512", "1024")
    assert task["containerDefinitions"][0]["image"].endswith(f"/{REPOSITORY}:abababababab")

    again = backend.provision("credit-0001", "candidate", bundle(tmp_path), in_hour())
    assert (again.url, again.handle, again.expires_at) == (env.url, env.handle, env.expires_at)
    assert [e.role for e in backend.list()] == ["candidate"]
    cost = backend.cost(env, until=env.created_at + timedelta(hours=2))
    assert (cost.vcpu_hours, cost.gb_hours) == (1.0, 2.0)

    assert [e.role for e in backend.teardown("credit-0001")] == ["candidate"]
    assert resources(aws) == {}
    assert backend.teardown("credit-0001") == []
    assert backend.parity(env) is None  # credit has no production service on ECS


def test_a_failure_half_way_through_provisioning_leaves_nothing(aws, tmp_path):
    config, ecs, discovery, ecr = aws
    broken = EcsEnvironments(
        EcsConfig(**{**config.__dict__, "cluster": "no-such-cluster"}),
        ecs,
        discovery,
        tmp_path,
        ecr=ecr,
    )
    with pytest.raises(EnvironmentError_, match="candidate environment for credit-0002"):
        broken.provision("credit-0002", "candidate", bundle(tmp_path), in_hour())
    assert resources(aws) == {}


def test_a_failing_health_wait_leaves_nothing(aws, tmp_path):
    def unhealthy(env):
        raise TimeoutError("never HEALTHY")

    config, ecs, discovery, ecr = aws
    backend = EcsEnvironments(config, ecs, discovery, tmp_path, ecr=ecr, waiter=unhealthy)
    with pytest.raises(EnvironmentError_, match="never HEALTHY"):
        backend.provision("credit-0003", "candidate", bundle(tmp_path), in_hour())
    assert resources(aws) == {}


def with_repository(aws, tmp_path, repository: str) -> EcsEnvironments:
    config, ecs, discovery, ecr = aws
    uri = config.image_repository.replace(REPOSITORY, repository)
    config = EcsConfig(**{**config.__dict__, "image_repository": uri})
    return EcsEnvironments(config, ecs, discovery, tmp_path, ecr=ecr, waiter=lambda env: None)


@pytest.mark.parametrize("repository", [REPOSITORY, "no-such-repository"])
def test_an_image_not_in_ecr_is_refused_before_anything_is_created(
    aws, backend, tmp_path, repository
):
    unpushed = with_repository(aws, tmp_path, repository)
    image = f"{unpushed.config.image_repository}:efefefefefef"
    with pytest.raises(EnvironmentError_, match="fearless image build <project> --push") as info:
        unpushed.provision("credit-0007", "candidate", bundle(tmp_path, UNPUSHED), in_hour())
    assert f"candidate environment for credit-0007: image {image} is not in ECR" in str(info.value)
    assert resources(aws) == {}
    assert backend.list() == []


def test_once_the_image_is_pushed_the_same_provision_goes_ahead(aws, backend, tmp_path):
    _, _, _, ecr = aws
    candidate = bundle(tmp_path, "sha256:" + "12" * 32)
    with pytest.raises(EnvironmentError_, match="121212121212 is not in ECR"):
        backend.provision("credit-0008", "candidate", candidate, in_hour())
    push_manifest(ecr, REPOSITORY, "121212121212")
    env = backend.provision("credit-0008", "candidate", candidate, in_hour())
    assert len(resources(aws)) == 3
    definition = aws[1].describe_task_definition(taskDefinition=env.handle["task_definition_arn"])
    image = definition["taskDefinition"]["containerDefinitions"][0]["image"]
    assert image == f"{backend.config.image_repository}:121212121212"


class Crash(BaseException):
    """A process killed mid-provisioning: no except clause of ours runs."""


def test_a_crash_half_way_is_found_by_tags_and_removed_by_teardown(aws, backend, tmp_path):
    def crash(env):
        raise Crash

    config, ecs, discovery, ecr = aws
    crashing = EcsEnvironments(config, ecs, discovery, tmp_path, ecr=ecr, waiter=crash)
    with pytest.raises(Crash):
        crashing.provision("credit-0004", "candidate", bundle(tmp_path), in_hour())
    assert len(resources(aws)) == 3
    assert [e.release_id for e in backend.list()] == ["credit-0004"]
    backend.teardown("credit-0004")
    assert resources(aws) == {}


def test_janitor_removes_only_expired_tagged_environments(aws, backend, tmp_path):
    _, ecs, _, _ = aws
    past = datetime.now(UTC) - timedelta(minutes=1)
    backend.provision("credit-0005", "candidate", bundle(tmp_path), past)
    backend.provision("credit-0005", "champion", bundle(tmp_path, "sha256:" + "cd" * 32), past)
    backend.provision("credit-0006", "candidate", bundle(tmp_path), in_hour())
    untagged = ecs.register_task_definition(
        family="fearless-someone-elses",
        containerDefinitions=[{"name": "x", "image": "nginx", "memory": 128}],
    )["taskDefinition"]["taskDefinitionArn"]

    assert {e.release_id for e in sweep(backend, dry_run=True)} == {"credit-0005"}
    assert len(resources(aws)) == 10

    removed = sweep(backend)
    assert sorted((e.release_id, e.role) for e in removed) == [
        ("credit-0005", "candidate"),
        ("credit-0005", "champion"),
    ]
    left = resources(aws)
    assert untagged in left
    assert {t.get(f"{TAG_PREFIX}release-id") for t in left.values()} == {"credit-0006", None}
    ecs.deregister_task_definition(taskDefinition=untagged)
    ecs.delete_task_definitions(taskDefinitions=[untagged])


def test_a_stopped_task_is_reported_with_ecs_stopped_reason(aws, backend, tmp_path):
    """Moto starts no service tasks: the service's task is run and stopped by hand, as ECS
    would after an out-of-memory kill."""
    config, ecs, _, _ = aws
    env = backend.provision("credit-0009", "candidate", bundle(tmp_path), in_hour())
    assert backend.check(env) is None
    service = env.handle["service_arn"].rsplit("/", 1)[-1]
    # moto cannot run an awsvpc task: a plain definition stands in (the group ties it to us)
    plain = ecs.register_task_definition(
        family="stand-in",
        containerDefinitions=[{"name": "model-api", "image": "model-api", "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    task = ecs.run_task(
        cluster=config.cluster,
        taskDefinition=plain,
        group=f"service:{service}",
        launchType="FARGATE",
    )["tasks"][0]
    assert backend.check(env) is None  # running
    reason = "OutOfMemoryError: Container killed due to memory usage"
    ecs.stop_task(cluster=config.cluster, task=task["taskArn"], reason=reason)
    down = backend.check(env)
    ecs.deregister_task_definition(taskDefinition=plain)
    assert down.role == "candidate" and down.reason.startswith(f"stopped: {reason} (exit code")
    assert "credit-0009" in down.log_tail  # where its logs are
