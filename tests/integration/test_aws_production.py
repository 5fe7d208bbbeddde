"""Production on ECS against a moto server: environments copied from it, deployments to it,
and a bake's shadow (the previous version run as the release's `shadow` environment, both
sides' inference logs shipped to S3 by the real log and shipper, then paired).

Moto runs no containers and never rolls a deployment back, so the waiters are replaced: what
is checked is every call's effect on the service (task definition, circuit breaker, autoscaling).
Production's `/metrics` is a real HTTP server here; the model API's forwarding to its shadow is
tested with real processes in tests/integration/test_serving_forwarding.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.exceptions import ClientError

from fearless.aws.inference_logs import InferenceLogShipper, environment_logs, production_logs
from fearless.bundles.bundle import Bundle
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import DIGEST_VARIABLE, EcsConfig
from fearless.environments.ecs.definitions import differences
from fearless.production.ecs import EcsProductionService, ProductionError
from fearless.serving.inference_log import InferenceLog
from fearless.spec import ModelSpec
from tests.integration.conftest import s3_bucket

REGION = "us-east-1"
CLUSTER = "production-tests"
BOOTSTRAP = "sha256:" + "00" * 32
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def aws(moto_endpoint):
    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    ecs, discovery, ec2 = make("ecs"), make("servicediscovery"), make("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="prod", Description="prod", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=CLUSTER)
    discovery.create_private_dns_namespace(Name="production-tests.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    config = EcsConfig(
        region=REGION,
        cluster=CLUSTER,
        subnets=[subnet],
        security_groups=[group],
        image_repository="123456789012.dkr.ecr.us-east-1.amazonaws.com/fearless-models",
        namespace_id=next(n["Id"] for n in namespaces if n["Name"].startswith(CLUSTER)),
        execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        task_role_arn="arn:aws:iam::123456789012:role/fearless-task",
        log_group="/fearless/environments",
        creator="tests",
    )
    return config, ecs, discovery, make("application-autoscaling")


@pytest.fixture
def production(aws):
    """`credit-production` as Terraform creates it: a bigger task, its own variables and logs."""
    config, ecs, _, autoscaling = aws
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
        cluster=CLUSTER,
        serviceName="credit-production",
        taskDefinition=arn,
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {**network, "assignPublicIp": "DISABLED"}},
        tags=[{"key": "fearless:url", "value": "https://credit.models.internal"}],
    )
    yield arn
    ecs.delete_service(cluster=CLUSTER, service="credit-production", force=True)
    family = {"familyPrefix": "credit-production"}
    listed = [ecs.list_task_definitions(**family, status=s) for s in ("ACTIVE", "INACTIVE")]
    revisions = [arn for page in listed for arn in page["taskDefinitionArns"]]
    for revision in revisions:
        ecs.deregister_task_definition(taskDefinition=revision)
    ecs.delete_task_definitions(taskDefinitions=revisions)
    target = {
        "ServiceNamespace": "ecs",
        "ScalableDimension": "ecs:service:DesiredCount",
        "ResourceId": f"service/{CLUSTER}/credit-production",
    }
    with contextlib.suppress(ClientError):  # only the tests that switched registered these
        autoscaling.delete_scaling_policy(**target, PolicyName="credit-production-cpu")
        autoscaling.deregister_scalable_target(**target)


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


def bundle(tmp_path, memory_mb=1000, digest=DIGEST) -> Bundle:
    files = {"model": "model.joblib", "reference_data": "reference.parquet"}
    resources = {"cpu": 0.5, "memory_mb": memory_mb}
    spec = {"name": "credit", **files, "schema": {"age": {"type": "int"}}, "resources": resources}
    return Bundle(path=tmp_path, digest=digest, spec=ModelSpec.model_validate(spec))


def in_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


def describe(ecs, arn: str) -> dict:
    return ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]


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


BUCKET = "fearless-shadow-tests"
PREVIOUS = "sha256:" + "cd" * 32
METRICS = b"""# TYPE fearless_http_requests counter
fearless_http_requests_total{route="/predict",code="200"} 40
"""


@pytest.fixture(scope="module")
def s3(moto_endpoint):
    return s3_bucket(moto_endpoint, BUCKET)


@pytest.fixture
def metrics_url():
    """Production's `/metrics`, as its model API would answer it."""

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(METRICS)))
            self.end_headers()
            self.wfile.write(METRICS)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def shadows(aws, s3, tmp_path):
    config, ecs, discovery, autoscaling = aws
    config = dataclasses.replace(config, bucket=BUCKET)
    environments = EcsEnvironments(
        config, ecs, discovery, tmp_path / "runs", waiter=lambda env: None, s3=s3
    )
    service = EcsProductionService(
        config, ecs, autoscaling, waiter=lambda instance: None, shadows=environments, s3=s3
    )
    yield environments, service
    for env in environments.list():
        environments.teardown(env.release_id)


def _variables(definition: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in definition["containerDefinitions"][0]["environment"]}


def _ship(s3, where, root, digest: str, source: str, predictions: dict[str, int]) -> None:
    """What a model API of `digest` logs and ships for these requests (id: prediction)."""
    log = InferenceLog(root, "credit", digest)
    for request_id, prediction in predictions.items():
        record = [{"age": int(request_id[1:])}]
        log.append(request_id, record, [{"prediction": prediction, "score": prediction}], 1.0)
    InferenceLogShipper(s3, where, root, source=source).ship_once()


def test_production_revisions_name_the_models_shadow_and_nothing_derived_copies_it(
    aws, production, shadows, tmp_path
):
    _, ecs, _, _ = aws
    environments, service = shadows
    promoted = service.start(bundle(tmp_path))
    variables = _variables(describe(ecs, promoted.handle["task_definition_arn"]))
    assert variables["FEARLESS_SHADOW_URL"] == "http://credit-shadow.production-tests.internal:8080"
    assert variables["FEARLESS_SHADOW_SAMPLE"] == "1"
    service.switch(promoted)

    env = environments.provision("credit-0301", "candidate", bundle(tmp_path), in_hour())
    copied = _variables(describe(ecs, env.handle["task_definition_arn"]))
    assert "FEARLESS_SHADOW_URL" not in copied and "FEARLESS_SHADOW_SAMPLE" not in copied
    assert environments.parity(env) == []  # production's shadow variables are its own

    quiet = bundle(tmp_path, digest=PREVIOUS)
    bake = quiet.spec.bake.model_copy(update={"shadow": False})
    quiet = dataclasses.replace(quiet, spec=quiet.spec.model_copy(update={"bake": bake}))
    variables = _variables(describe(ecs, service.start(quiet).handle["task_definition_arn"]))
    assert "FEARLESS_SHADOW_URL" not in variables  # copied from the running one, then dropped


def test_a_bake_window_runs_the_previous_version_as_the_releases_shadow_and_pairs_the_logs(
    aws, production, shadows, s3, metrics_url, tmp_path
):
    config, ecs, discovery, _ = aws
    environments, service = shadows
    service.switch(service.start(bundle(tmp_path)))
    arn = ecs.describe_services(cluster=CLUSTER, services=["credit-production"])["services"][0]
    ecs.tag_resource(
        resourceArn=arn["serviceArn"], tags=[{"key": "fearless:url", "value": metrics_url}]
    )
    release = "credit-0302"
    until = datetime.now(UTC) + timedelta(seconds=60)
    with service.bake_window(
        "credit", shadow=bundle(tmp_path, digest=PREVIOUS), release_id=release, until=until
    ) as reader:
        _wait(reader.settled)
        [shadow] = environments.inventory.found(release)
        assert (shadow.role, shadow.digest) == ("shadow", PREVIOUS)
        assert shadow.url == "http://credit-shadow.production-tests.internal:8080"
        assert shadow.expires_at >= until
        task = describe(ecs, shadow.handle["task_definition_arn"])
        assert task["containerDefinitions"][0]["image"].endswith(":cdcdcdcdcdcd")
        assert "FEARLESS_SHADOW_URL" not in _variables(task)  # never copies to itself

        live = production_logs(BUCKET, config.inference_prefix)
        copied = environment_logs(BUCKET, config.inference_prefix, release, "shadow")
        answers = {f"r{i}": i % 2 for i in range(10)}
        _ship(s3, live, tmp_path / "task-a", DIGEST, "task-a", dict(list(answers.items())[:6]))
        _ship(s3, live, tmp_path / "task-b", DIGEST, "task-b", dict(list(answers.items())[6:]))
        _ship(s3, live, tmp_path / "old", PREVIOUS, "old", {"r0": 0})  # draining: not compared
        disagree = {"r0": 1, "r1": 1}  # r0 differs by 1, r1 agrees
        _ship(s3, copied, tmp_path / "shadow", PREVIOUS, "shadow", {**answers, **disagree})
        seen = reader.read()
        assert (seen.requests, seen.compared, seen.agreed, seen.shift) == (40, 10, 9, 1.0)
        assert reader.read().compared == 10  # each chunk is read once

    assert environments.inventory.found(release) == []
    names = [s["Name"] for s in discovery.list_services()["Services"]]
    assert "credit-shadow" not in names


def test_a_shadow_left_by_a_dead_worker_is_removed_with_its_release(
    aws, production, shadows, tmp_path
):
    _, _, discovery, _ = aws
    environments, _ = shadows
    release = "credit-0303"
    environments.provision(
        release, "shadow", bundle(tmp_path, digest=PREVIOUS), in_hour(), dns_name="credit-shadow"
    )
    assert "credit-shadow" in [s["Name"] for s in discovery.list_services()["Services"]]
    [removed] = environments.teardown(release)
    assert removed.role == "shadow"
    assert "credit-shadow" not in [s["Name"] for s in discovery.list_services()["Services"]]


def _wait(done, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "the shadow never finished starting"
        time.sleep(0.05)
