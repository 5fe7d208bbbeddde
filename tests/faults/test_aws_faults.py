"""AWS faults on the ECS backend and the S3 registry, made on the wire in front of moto.

Fearless's clients talk to moto through a loopback proxy (aws_proxy.py) that throttles or
fails the first calls of an action as AWS does; botocore's retry mode, set once for every
client (`fearless.aws.aws_client`), has to carry the step through. Each case ends with the
janitor's sweep of everything tagged: it must find nothing left behind.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from fearless.aws import aws_client
from fearless.bundles.bundle import Bundle
from fearless.environments import EnvironmentError_
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import EcsConfig, environment_names
from fearless.environments.janitor import sweep
from fearless.registry import AliasConflict
from fearless.registry.s3 import S3Registry
from fearless.settings import Settings
from fearless.spec import ModelSpec
from tests.faults.aws_proxy import (
    ECS_UNAVAILABLE,
    S3_INTERNAL,
    S3_SLOW_DOWN,
    THROTTLED,
    AwsProxy,
    Fault,
    action,
    s3_call,
)
from tests.faults.matrix import FaultRow, record
from tests.integration.test_aws_ecr import push_manifest

REGION = "us-east-1"
REPOSITORY = "fearless-faults"
BUCKET = "fearless-faults"
TAG = "abababababab"  # the image of the bundle these tests provision
FAR_FUTURE = datetime.now(UTC) + timedelta(days=3650)


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    """A cluster, a namespace, a pushed image and a bucket on moto, made directly (no proxy)."""

    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    ecs, discovery, ec2, ecr = make("ecs"), make("servicediscovery"), make("ec2"), make("ecr")
    repository = ecr.create_repository(repositoryName=REPOSITORY)["repository"]["repositoryUri"]
    push_manifest(ecr, REPOSITORY, TAG)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="faults", Description="f", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName="faults")
    discovery.create_private_dns_namespace(Name="faults.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    make("s3").create_bucket(Bucket=BUCKET)
    config = EcsConfig(
        region=REGION,
        cluster="faults",
        subnets=[subnet],
        security_groups=[group],
        image_repository=repository,
        namespace_id=next(n["Id"] for n in namespaces if n["Name"] == "faults.internal"),
        execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        task_role_arn="arn:aws:iam::123456789012:role/fearless-task",
        log_group="/fearless/environments",
        creator="tests",
    )
    return config, make


@pytest.fixture
def proxy(moto_endpoint):
    with AwsProxy(moto_endpoint) as faulty:
        yield faulty


def settings_via(proxy, mode: str = "standard", attempts: int = 5) -> Settings:
    return Settings(aws_endpoint_url=proxy.url, aws_retry_mode=mode, aws_max_attempts=attempts)


def environments(aws, settings: Settings, tmp_path, **kwargs) -> EcsEnvironments:
    """The ECS backend as the composition root builds it: its clients from `settings`."""
    config, _ = aws
    clients = {s: aws_client(settings, s) for s in ("ecs", "servicediscovery", "ecr")}
    return EcsEnvironments(
        config, clients["ecs"], clients["servicediscovery"], tmp_path, ecr=clients["ecr"], **kwargs
    )


def janitor_finds(aws, tmp_path) -> int:
    """What the janitor's sweep removes once every expiry has passed: tagged leftovers."""
    config, make = aws
    direct = EcsEnvironments(config, make("ecs"), make("servicediscovery"), tmp_path)
    return len(sweep(direct, now=FAR_FUTURE))


def bundle(tmp_path) -> Bundle:
    spec = {"name": "credit", "model": "model.joblib", "reference_data": "reference.parquet"}
    spec |= {"schema": {"age": {"type": "int"}}, "resources": {"cpu": 0.5, "memory_mb": 1000}}
    return Bundle(path=tmp_path, digest="sha256:" + "ab" * 32, spec=ModelSpec.model_validate(spec))


def in_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("fault", "operation", "answer", "mode"),
    [
        ("ECS throttling (ThrottlingException)", "ecs:CreateService", THROTTLED, "standard"),
        ("ECS 503 (ServiceUnavailable)", "ecs:RegisterTaskDefinition", ECS_UNAVAILABLE, "adaptive"),
    ],
)
def test_ecs_throttling_and_5xx_are_retried_and_the_environment_provisioned(
    aws, proxy, tmp_path, fault, operation, answer, mode
):
    backend = environments(aws, settings_via(proxy, mode), tmp_path, waiter=lambda env: None)
    proxy.inject(Fault(action(operation), answer, times=2))
    started = time.monotonic()
    env = backend.provision("credit-f0001", "candidate", bundle(tmp_path), in_hour())
    recovered = time.monotonic() - started
    assert proxy.seen[operation] == 3, proxy.answered  # two refused, the third taken
    assert "service_arn" in env.handle
    assert [e.role for e in backend.teardown("credit-f0001")] == ["candidate"]
    record(
        FaultRow(
            fault=f"{fault} x2",
            step="provision",
            outcome=f"retried ({mode} mode, 3 attempts): provisioned, then torn down",
            leaked=janitor_finds(aws, tmp_path),
            recover_s=round(recovered, 2),
        )
    )


def test_throttling_that_outlasts_the_retries_fails_provisioning_by_name(aws, proxy, tmp_path):
    backend = environments(aws, settings_via(proxy, attempts=3), tmp_path, waiter=lambda e: None)
    proxy.inject(Fault(action("ecs:CreateService"), THROTTLED, times=100))
    with pytest.raises(EnvironmentError_) as failed:
        backend.provision("credit-f0002", "candidate", bundle(tmp_path), in_hour())
    message = str(failed.value)
    assert "candidate environment for credit-f0002 failed" in message
    assert (
        "(ThrottlingException) when calling the CreateService operation (reached max retries"
        in message
    )
    assert proxy.seen["ecs:CreateService"] == 3
    assert backend.list() == []  # its own teardown removed the half-made environment
    record(
        FaultRow(
            fault="ECS throttling on every attempt",
            step="provision",
            outcome="failed: ThrottlingException after 3 attempts, named; half-made env torn down",
            leaked=janitor_finds(aws, tmp_path),
        )
    )


def fail_health_checks_of(aws, release_id: str, role: str, stop: threading.Event) -> None:
    """ECS's part, on moto (which starts no tasks): once the service exists, start a task of
    its deployment and stop it for failing its container health checks."""
    config, make = aws
    ecs = make("ecs")
    name, _ = environment_names(release_id, role)
    plain = ecs.register_task_definition(  # moto cannot run an awsvpc task: a plain stand-in
        family="stand-in",
        containerDefinitions=[{"name": "model-api", "image": "model-api", "memory": 512}],
    )["taskDefinition"]["taskDefinitionArn"]
    try:
        while not stop.is_set():
            services = ecs.describe_services(cluster=config.cluster, services=[name])["services"]
            if services and services[0]["status"] == "ACTIVE":
                deployment = services[0]["deployments"][0]["id"]
                task = ecs.run_task(
                    cluster=config.cluster, taskDefinition=plain, group=f"service:{name}",
                    launchType="FARGATE", startedBy=deployment,
                )["tasks"][0]  # fmt: skip
                reason = "Task failed container health checks"
                ecs.stop_task(cluster=config.cluster, task=task["taskArn"], reason=reason)
                return
            time.sleep(0.1)
    finally:
        ecs.deregister_task_definition(taskDefinition=plain)
        ecs.delete_task_definitions(taskDefinitions=[plain])


def test_a_task_that_fails_its_health_checks_fails_provisioning_at_once(aws, proxy, tmp_path):
    backend = environments(
        aws, settings_via(proxy), tmp_path, sleep=lambda s: time.sleep(0.2), health_timeout_s=60
    )
    stop, errors = threading.Event(), []

    def play_ecs() -> None:
        try:
            fail_health_checks_of(aws, "credit-f0003", "candidate", stop)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    ecs_side = threading.Thread(target=play_ecs, daemon=True)
    ecs_side.start()
    started = time.monotonic()
    try:
        with pytest.raises(EnvironmentError_) as failed:
            backend.provision("credit-f0003", "candidate", bundle(tmp_path), in_hour())
    finally:
        stop.set()
        ecs_side.join(timeout=30)
    took = time.monotonic() - started
    assert not errors, errors
    assert "a task failed its health checks (Task failed container health checks)" in str(
        failed.value
    )
    assert "never became stable" not in str(failed.value)  # not by waiting it out
    assert backend.list() == []
    record(
        FaultRow(
            fault="task fails its health checks",
            step="provision",
            outcome="failed at once, naming ECS's stopped reason; environment torn down",
            leaked=janitor_finds(aws, tmp_path),
            recover_s=round(took, 2),
        )
    )


def registry_via(aws, settings: Settings, tmp_path, prefix: str) -> S3Registry:
    return S3Registry(aws_client(settings, "s3"), BUCKET, prefix, tmp_path / "cache")


def test_s3_slow_down_and_500_on_the_alias_are_retried(aws, proxy, tmp_path):
    registry = registry_via(aws, settings_via(proxy), tmp_path, "slow")
    proxy.inject(Fault(s3_call("PUT", "/aliases/production.json"), S3_SLOW_DOWN, times=2))
    proxy.inject(Fault(s3_call("GET", "/aliases/production.json"), S3_INTERNAL, times=2))
    started = time.monotonic()
    registry.set_alias("credit", "production", "sha256:a", expected=None, actor="ann", reason="1")
    recovered = time.monotonic() - started
    alias_calls = {k.split()[0]: v for k, v in proxy.seen.items() if "aliases/production" in k}
    assert alias_calls == {"GET": 3, "PUT": 3}, proxy.answered  # each refused twice, then taken
    assert registry.get_alias("credit", "production") == "sha256:a"
    assert [m.to_digest for m in registry.history("credit")] == ["sha256:a"]
    record(
        FaultRow(
            fault="S3 SlowDown (503) x2 on the alias write, InternalError (500) x2 on its read",
            step="promote (registry alias)",
            outcome="retried (standard mode): alias moved once, history one entry",
            recover_s=round(recovered, 2),
        )
    )


def test_a_conflicting_conditional_write_on_the_alias_loses_by_name(aws, proxy, tmp_path):
    """Another writer moves the alias between this writer's read and its conditional write."""
    _, make = aws
    registry = registry_via(aws, settings_via(proxy), tmp_path, "race")
    other = S3Registry(make("s3"), BUCKET, "race", tmp_path / "other")
    registry.set_alias("credit", "production", "sha256:old", expected=None, actor="ci", reason="")

    def other_writer_moves_it() -> None:
        other.set_alias(
            "credit", "production", "sha256:theirs", expected="sha256:old", actor="bob", reason=""
        )

    write = s3_call("PUT", "/aliases/production.json")
    proxy.inject(Fault(write, answer=None, before=other_writer_moves_it))
    with pytest.raises(AliasConflict, match="someone moved it first"):
        registry.set_alias(
            "credit", "production", "sha256:ours", expected="sha256:old", actor="ann", reason=""
        )
    assert registry.get_alias("credit", "production") == "sha256:theirs"
    moves = [(m.actor, m.to_digest) for m in registry.history("credit")]
    assert moves == [("ci", "sha256:old"), ("bob", "sha256:theirs")]
    record(
        FaultRow(
            fault="conflicting conditional write on the alias (412)",
            step="promote (registry alias)",
            outcome="AliasConflict: this promotion refused, the other writer's move kept",
        )
    )


def test_an_alias_write_whose_answer_was_lost_is_recognised_as_its_own(aws, proxy, tmp_path):
    """The write lands, its answer is lost (500), the retry fails its own condition: the
    alias holds this very move, so it is no conflict."""
    registry = registry_via(aws, settings_via(proxy), tmp_path, "lost")
    write = s3_call("PUT", "/aliases/production.json")
    proxy.inject(Fault(write, S3_INTERNAL, after=True))
    move = registry.set_alias(
        "credit", "production", "sha256:a", expected=None, actor="ann", reason=""
    )
    assert move.to_digest == "sha256:a"
    assert registry.get_alias("credit", "production") == "sha256:a"
    assert [m.to_digest for m in registry.history("credit")] == ["sha256:a"]
    record(
        FaultRow(
            fault="S3 answer lost (500) after the alias write landed",
            step="promote (registry alias)",
            outcome="retry refused by its own condition, recognised as its own move: moved once",
        )
    )
