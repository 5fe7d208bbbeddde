"""The AWS services as the composition root builds them from settings, against a moto server.

Moto runs no containers, so what a model API task would do is done here by the real shipper,
with the location and run id the task definition gives that container. The bundles' images are
bare manifests pushed to moto's ECR, which the environments check before creating anything.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from fearless.aws.inference_logs import InferenceLogShipper, S3Location
from fearless.bundles.bundle import Bundle
from fearless.bundles.image import dockerfile_for
from fearless.composition import build_services
from fearless.drift.nightly import check_model_drift
from fearless.environments import EnvironmentError_
from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import CONTAINER, DIGEST_VARIABLE, LOG_DIR
from fearless.production.board import AnnouncedProduction
from fearless.production.ecs import EcsProductionService
from fearless.serving.__main__ import _parse
from fearless.serving.inference_log import InferenceLog, read_inference_log
from fearless.settings import Settings
from fearless.spec import ModelSpec
from tests.integration.test_aws_ecr import push_manifest

REGION = "us-east-1"
CLUSTER = "wiring-tests"
BUCKET = "fearless-wiring"
REPOSITORY = "fearless-wiring"
SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "model.joblib",
        "reference_data": "reference.parquet",
        "schema": {"age": {"type": "int"}},
        "resources": {"cpu": 0.5, "memory_mb": 1000},
    }
)


@pytest.fixture(scope="module")
def settings(moto_endpoint, tmp_path_factory) -> Settings:
    def make(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    ec2, discovery, ecr = make("ec2"), make("servicediscovery"), make("ecr")
    repository = ecr.create_repository(repositoryName=REPOSITORY)["repository"]["repositoryUri"]
    push_manifest(ecr, REPOSITORY, "abababababab")
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.2.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="wire", Description="wire", VpcId=vpc)["GroupId"]
    make("ecs").create_cluster(clusterName=CLUSTER)
    make("s3").create_bucket(Bucket=BUCKET)
    discovery.create_private_dns_namespace(Name="wiring.internal", Vpc=vpc)
    namespaces = discovery.list_namespaces()["Namespaces"]
    return Settings(
        state_dir=tmp_path_factory.mktemp("state"),
        backend="aws",
        aws_endpoint_url=moto_endpoint,
        aws_region=REGION,
        aws_cluster=CLUSTER,
        aws_subnets=[subnet],
        aws_security_groups=[group],
        aws_ecr_repository=repository,
        aws_bucket=BUCKET,
        aws_namespace_id=next(n["Id"] for n in namespaces if n["Name"] == "wiring.internal"),
        aws_execution_role_arn="arn:aws:iam::123456789012:role/fearless-execution",
        aws_task_role_arn="arn:aws:iam::123456789012:role/fearless-model-api",
        aws_production_min_tasks=3,
        aws_production_max_tasks=7,
        aws_production_target_cpu_percent=55.0,
    )


@pytest.fixture
def services(settings):
    services = build_services(settings)
    services.environments.waiter = lambda env: None  # moto runs no container to wait for
    yield services
    for env in services.environments.list():
        services.environments.teardown(env.release_id)


def bundle(tmp_path: Path, digest: str = "sha256:" + "ab" * 32) -> Bundle:
    return Bundle(path=tmp_path, digest=digest, spec=SPEC)


def model_api(services, task_definition_arn: str) -> tuple[list[str], dict[str, str]]:
    """The model API container's command and environment in a task definition."""
    task = services.environments.ecs.describe_task_definition(taskDefinition=task_definition_arn)
    container = next(
        c for c in task["taskDefinition"]["containerDefinitions"] if c["name"] == CONTAINER
    )
    return container["command"], {e["name"]: e["value"] for e in container["environment"]}


def ship(s3, url: str, run_id: str, root: Path, ages: list[int]) -> list[str]:
    """What the model API task does: log predictions under its log dir and ship them."""
    log = InferenceLog(root, "credit", "sha256:abc")
    for age in ages:
        log.append(f"r{age}", [{"age": age}], [{"prediction": 1, "score": 0.5}], 1.0)
    return InferenceLogShipper(s3, S3Location.parse(url), root, run_id, "task-1").ship_once()


def test_settings_build_ecs_services_that_share_one_ecs_client(services):
    # What serves is recorded on the server at each switch: the ECS service is inside that.
    assert isinstance(services.production, AnnouncedProduction)
    production, environments = services.production.inner, services.environments
    assert isinstance(production, EcsProductionService)
    assert isinstance(environments, EcsEnvironments)
    assert production.ecs is environments.ecs
    assert environments.s3 is services.registry.s3
    assert environments.ecr.meta.service_model.service_name == "ecr"
    scaling = production.scaling
    assert (scaling.min_tasks, scaling.max_tasks, scaling.target_cpu_percent) == (3, 7, 55.0)


def test_the_load_generator_is_an_ecs_fleet_once_its_task_definition_is_set(settings):
    from fearless.loadtest.ecs_fleet import EcsFleet
    from fearless.loadtest.sizing import SizedLocust

    assert isinstance(build_services(settings).load_generator("credit-1"), SizedLocust)
    values = {
        **settings.model_dump(),
        "aws_loadgen_task_definition": "fearless-loadgen",
        "aws_flow_security_groups": ["sg-flow"],
    }
    services = build_services(Settings.model_validate(values))
    fleet = services.load_generator("credit-1")
    assert isinstance(fleet, EcsFleet) and fleet.release_id == "credit-1"
    assert fleet.ecs is services.environments.ecs and fleet.s3 is services.registry.s3
    tasks = fleet.tasks
    assert (tasks.cluster, tasks.task_definition) == (CLUSTER, "fearless-loadgen")
    assert (tasks.subnets, tasks.security_groups) == (settings.aws_subnets, ["sg-flow"])
    assert tasks.tags["fearless:release-id"] == "credit-1"
    assert fleet.workers_for is not None  # sized per run from the rate


def test_min_tasks_above_max_tasks_is_refused_naming_both(settings):
    values = {**settings.model_dump(), "aws_production_min_tasks": 8}
    with pytest.raises(ValueError, match="MIN_TASKS \\(8\\) is more than .*MAX_TASKS \\(7\\)"):
        Settings(**values)


def test_an_environment_ships_its_inference_log_and_the_run_reads_it_back(services, tmp_path):
    env = services.environments.provision(
        "credit-0201", "candidate", bundle(tmp_path), datetime.now(UTC) + timedelta(hours=1)
    )
    command, variables = model_api(services, env.handle["task_definition_arn"])
    url = f"s3://{BUCKET}/inference/credit-0201/candidate"
    assert variables["FEARLESS_INFERENCE_LOG_S3"] == url
    assert variables["FEARLESS_RUN_ID"] == "credit-0201"
    assert variables["FEARLESS_AWS_REGION"] == REGION
    assert command[:3] == ["python", "-m", "fearless.serving"]
    assert _parse(command[3:]).log_dir == Path(LOG_DIR)  # the model API accepts it as given
    assert f"CMD {command[:-2]}".replace("'", '"') in dockerfile_for(SPEC)  # the image's own

    empty = services.environments.inference_log_dir(env)
    assert read_inference_log(empty, "credit").empty
    s3 = services.environments.s3
    assert ship(s3, url, variables["FEARLESS_RUN_ID"], tmp_path / "task", [30, 41, 52])
    local = services.environments.inference_log_dir(env)
    assert local == empty
    assert list(read_inference_log(local, "credit")["age"]) == [30, 41, 52]


def test_production_ships_under_the_production_prefix_and_nightly_drift_reads_it(
    services, tmp_path
):
    ecs, config = services.production.ecs, services.production.config
    registered = ecs.register_task_definition(
        family="credit-production",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {
                "name": CONTAINER,
                "image": f"{config.image_repository}:bootstrap",
                "environment": [{"name": DIGEST_VARIABLE, "value": "sha256:" + "00" * 32}],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"subnets": config.subnets, "securityGroups": config.security_groups}
    ecs.create_service(
        cluster=CLUSTER,
        serviceName="credit-production",
        taskDefinition=registered,
        desiredCount=1,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": network},
    )
    try:
        started = services.production.start(bundle(tmp_path))
        _, variables = model_api(services, started.handle["task_definition_arn"])
        url = f"s3://{BUCKET}/inference/production"
        assert variables["FEARLESS_INFERENCE_LOG_S3"] == url
        assert "FEARLESS_RUN_ID" not in variables
        services.production.inner.waiter = lambda instance: None  # no container gets healthy
        services.production.switch(started)
        env = services.environments.provision(
            "credit-0202", "candidate", bundle(tmp_path), datetime.now(UTC) + timedelta(hours=1)
        )
        _, copied = model_api(services, env.handle["task_definition_arn"])
        assert copied["FEARLESS_INFERENCE_LOG_S3"].endswith("/inference/credit-0202/candidate")
        assert services.environments.parity(env) == []  # where it ships is run-scoped
    finally:
        ecs.delete_service(cluster=CLUSTER, service="credit-production", force=True)

    ship(services.environments.s3, url, "", tmp_path / "prod", [25, 60])
    since = datetime.now(UTC) - timedelta(hours=1)
    folder = services.production_logs("credit", since)
    assert list(read_inference_log(folder, "credit")["age"]) == [25, 60]


def test_an_environment_of_an_image_never_pushed_is_refused_naming_it(services, tmp_path):
    unpushed = bundle(tmp_path, "sha256:" + "9f" * 32)
    with pytest.raises(EnvironmentError_, match=f"{REPOSITORY}:9f9f9f9f9f9f is not in ECR"):
        services.environments.provision("credit-0203", "candidate", unpushed, datetime.now(UTC))
    assert services.environments.list() == []


class OneModelRegistry:
    def get_alias(self, model: str, alias: str) -> str:
        return "sha256:" + "ab" * 32

    def get_bundle(self, model: str, digest: str) -> Bundle:
        return Bundle(path=Path("/nowhere"), digest=digest, spec=SPEC)


def test_production_logs_that_cannot_be_fetched_make_that_model_an_error(services, tmp_path):
    source = services.production_logs
    source.location = S3Location("no-such-bucket", "inference/production")
    since = datetime.now(UTC) - timedelta(hours=1)
    result = check_model_drift(OneModelRegistry(), source, "credit", since, tmp_path, print)
    assert result.status == "error"
    assert "s3://no-such-bucket/inference/production" in result.reasons[0]
