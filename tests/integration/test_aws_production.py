"""Production on ECS against a moto server: environments copied from it, and deployments to it.

Moto runs no containers and never rolls a deployment back, so the waiters are replaced: what
is checked is every call's effect on the service (task definition, circuit breaker, autoscaling).
"""

from __future__ import annotations

import pytest

from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import DIGEST_VARIABLE
from fearless.environments.ecs.definitions import differences
from fearless.production.ecs import EcsProductionService, ProductionError
from tests.integration.ecs_production import (
    BOOTSTRAP,
    DIGEST,
    bundle,
    describe,
    ecs_account,
    in_hour,
    production_service,
)

CLUSTER = "production-tests"


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    return ecs_account(moto_endpoint, CLUSTER)


@pytest.fixture
def production(aws):
    config, ecs, _, autoscaling = aws
    with production_service(config, ecs, autoscaling) as arn:
        yield arn


@pytest.fixture
def environments(aws, tmp_path):
    config, ecs, discovery, _ = aws
    backend = EcsEnvironments(config, ecs, discovery, tmp_path, waiter=lambda env: None)
    yield backend
    for env in backend.list():
        backend.teardown(env.release_id)


@pytest.fixture
def service(aws):
    config, ecs, _, autoscaling = aws
    deployed = []
    service = EcsProductionService(config, ecs, autoscaling, waiter=deployed.append)
    service.deployed = deployed
    return service


def test_an_environment_is_production_with_only_the_bundle_changed(
    aws, production, environments, tmp_path
):
    _, ecs, _, _ = aws
    env = environments.provision("credit-0101", "candidate", bundle(tmp_path), in_hour())
    task = describe(ecs, env.handle["task_definition_arn"])
    assert (task["cpu"], task["memory"]) == ("1024", "2048")  # production's, above the spec's
    assert task["taskRoleArn"].endswith("role/fearless-model-api")
    container = task["containerDefinitions"][0]
    assert container["image"].endswith("fearless-models:abababababab")
    variables = {e["name"]: e["value"] for e in container["environment"]}
    assert variables == {"FEARLESS_TRUST_PICKLE": "false", DIGEST_VARIABLE: DIGEST}
    logs = container["logConfiguration"]["options"]
    assert logs["awslogs-group"] == "/fearless/production"  # production's, not the default
    assert logs["awslogs-stream-prefix"] == env.release_id
    assert environments.parity(env) == []


def test_parity_lists_what_the_spec_or_a_later_production_change_made_differ(
    aws, production, environments, tmp_path
):
    config, ecs, _, _ = aws
    env = environments.provision("credit-0102", "candidate", bundle(tmp_path, 3000), in_hour())
    more = "(the bundle's spec asks more than production has)"
    assert environments.parity(env) == [
        f'memory: production "2048", this environment "3072" {more}'
    ]
    network = {"awsvpcConfiguration": {"subnets": config.subnets, "securityGroups": []}}
    ecs.update_service(cluster=CLUSTER, service="credit-production", networkConfiguration=network)
    groups = f'["{config.security_groups[0]}"]'
    assert environments.parity(env)[1:] == [
        'service.assignPublicIp: production (none), this environment "DISABLED"',
        f"service.securityGroups: production (none), this environment {groups}",
    ]


def test_start_registers_production_with_only_the_bundle_changed_but_deploys_nothing(
    aws, production, service, tmp_path
):
    _, ecs, _, _ = aws
    current = service.current("credit")
    assert (current.digest, current.url) == (BOOTSTRAP, "https://credit.models.internal")
    assert (service.current("fraud"), service.stop("credit"), service.stop_all()) == (None, [], [])
    started = service.start(bundle(tmp_path))
    assert started.digest == DIGEST
    new, running = describe(ecs, started.handle["task_definition_arn"]), describe(ecs, production)
    assert new["family"] == "credit-production" and new["revision"] == running["revision"] + 1
    assert new["containerDefinitions"][0]["image"].endswith("fearless-models:abababababab")
    options = new["containerDefinitions"][0]["logConfiguration"]["options"]
    assert options["awslogs-stream-prefix"] == "prod"
    svc = ecs.describe_services(cluster=CLUSTER, services=["credit-production"])["services"][0]
    assert differences(running, svc, new, svc) == []
    assert service.current("credit") == current
    bigger = service.start(bundle(tmp_path, memory_mb=5000, digest="sha256:" + "cd" * 32))
    assert describe(ecs, bigger.handle["task_definition_arn"])["memory"] == "5120"


def test_switch_rolls_with_circuit_breaker_and_rollback_and_sets_target_tracking(
    aws, production, service, tmp_path
):
    _, ecs, _, autoscaling = aws
    started = service.start(bundle(tmp_path))
    previous = service.switch(started)
    assert previous.digest == BOOTSTRAP and service.deployed == [started]
    svc = ecs.describe_services(cluster=CLUSTER, services=["credit-production"])["services"][0]
    assert svc["taskDefinition"] == started.handle["task_definition_arn"]
    breaker = svc["deploymentConfiguration"]["deploymentCircuitBreaker"]
    assert breaker == {"enable": True, "rollback": True}
    assert service.current("credit").digest == DIGEST
    service.switch(service.start(bundle(tmp_path, digest="sha256:" + "ef" * 32)))
    resource = f"service/{CLUSTER}/credit-production"
    targets = autoscaling.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource])
    assert [(t["MinCapacity"], t["MaxCapacity"]) for t in targets["ScalableTargets"]] == [(2, 10)]
    policies = autoscaling.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource)
    [policy] = policies["ScalingPolicies"]  # a second switch re-asserts, never adds
    assert policy["PolicyName"] == "credit-production-cpu"
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 60.0
    metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert metric == "ECSServiceAverageCPUUtilization"


def test_discard_deregisters_a_started_revision_but_never_the_running_one(
    aws, production, service, tmp_path
):
    _, ecs, _, _ = aws
    started = service.start(bundle(tmp_path))
    service.discard(started)
    assert describe(ecs, started.handle["task_definition_arn"])["status"] == "INACTIVE"
    service.discard(service.current("credit"))
    assert describe(ecs, production)["status"] == "ACTIVE"


def test_a_deployment_ecs_rolled_back_is_an_error(production, service, tmp_path):
    started = service.start(bundle(tmp_path))  # the service still runs the old revision
    with pytest.raises(ProductionError, match="rolled the service back to .*production:1"):
        service.check_deployed(started)


def test_without_a_production_service_start_says_how_to_create_one(service, tmp_path):
    with pytest.raises(ProductionError, match="infra/modules/production_service"):
        service.start(bundle(tmp_path))
