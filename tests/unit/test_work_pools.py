"""The ECS work pool's base job template and the job variables each release run asks for."""

from __future__ import annotations

import asyncio
import copy
import json

import pytest

from fearless.platform.work_pools import (
    ECS_TEMPLATE_FILE,
    WorkPoolError,
    check_job_variables,
    check_template,
    ecs_job_variables,
    ecs_template_for,
    flow_run_env,
    job_variables_for,
    kind_for,
    load_ecs_template,
)
from fearless.settings import Settings
from fearless.spec import Resources

AWS = {
    "backend": "aws",
    "aws_cluster": "fearless",
    "aws_subnets": ["subnet-1", "subnet-2"],
    "aws_security_groups": ["sg-1"],
    "aws_vpc_id": "vpc-1",
    "aws_ecr_repository": "123.dkr.ecr.us-east-1.amazonaws.com/fearless",
    "aws_bucket": "fearless-registry",
    "aws_namespace_id": "ns-1",
    "aws_execution_role_arn": "arn:aws:iam::123:role/exec",
    "aws_task_role_arn": "arn:aws:iam::123:role/model-api",
    "aws_flow_task_role_arn": "arn:aws:iam::123:role/worker",
    "aws_flow_security_groups": ["sg-worker"],
    "aws_flow_image": "123.dkr.ecr.us-east-1.amazonaws.com/fearless-flows:1",
}


@pytest.fixture(scope="module")
def template() -> dict:
    return ecs_template_for(Settings(**AWS))


def test_committed_template_takes_cpu_and_memory_in_the_task_and_the_run_request():
    template = load_ecs_template()
    for name in ("cpu", "memory"):
        assert {"type": "integer"} in template["variables"]["properties"][name]["anyOf"]
        config = template["job_configuration"]
        assert config["task_definition"][name] == f"{{{{ {name} }}}}"
        assert config["task_run_request"]["overrides"][name] == f"{{{{ {name} }}}}"


def test_committed_template_keeps_prefect_aws_job_configuration():
    """Regenerate the file from the installed prefect-aws if this fails after an upgrade."""
    from prefect_aws.workers.ecs_worker import ECSWorker

    default = ECSWorker.get_default_base_job_template()
    committed = json.loads(ECS_TEMPLATE_FILE.read_text())
    assert committed["job_configuration"] == default["job_configuration"]
    assert set(committed["variables"]["properties"]) == set(default["variables"]["properties"])


def test_a_template_that_drops_a_placeholder_is_refused_by_name():
    broken = copy.deepcopy(load_ecs_template())
    broken["job_configuration"]["task_run_request"]["overrides"].pop("memory")
    broken["job_configuration"]["task_run_request"]["overrides"]["containerOverrides"][0].pop(
        "memory"
    )
    with pytest.raises(WorkPoolError, match=r"task_run_request never uses \{\{ memory \}\}"):
        check_template(broken, "t.json")
    broken["variables"]["properties"].pop("cpu")
    with pytest.raises(WorkPoolError, match="variables has no 'cpu'"):
        check_template(broken, "t.json")


@pytest.mark.parametrize(
    ("cpu", "memory_mb", "expected"),
    [
        (0.5, 1024, {"cpu": 1024, "memory": 2048}),  # the floor: Locust and Evidently run there
        (0.25, 512, {"cpu": 1024, "memory": 2048}),
        (2.0, 1024, {"cpu": 2048, "memory": 4096}),  # 2 vCPU needs at least 4 GB on Fargate
        (1.0, 3000, {"cpu": 1024, "memory": 3072}),  # rounded up to a valid Fargate size
        (16, 122_880, {"cpu": 16384, "memory": 122_880}),
    ],
)
def test_ecs_job_variables_are_the_smallest_fargate_size_that_fits(cpu, memory_mb, expected):
    assert ecs_job_variables(Resources(cpu=cpu, memory_mb=memory_mb)) == expected


def test_only_an_ecs_pool_is_sized_per_run():
    resources = Resources(cpu=2, memory_mb=4096)
    assert job_variables_for("ecs", resources) == {"cpu": 2048, "memory": 4096}
    assert job_variables_for("process", resources) == {}
    with pytest.raises(WorkPoolError, match="'kubernetes' is not one of: ecs, process"):
        job_variables_for("kubernetes", resources)


def test_the_server_would_accept_the_job_variables_and_refuse_strings(template):
    check_job_variables(template, ecs_job_variables(Resources(cpu=4, memory_mb=8192)))
    with pytest.raises(WorkPoolError, match="'cpu'"):
        check_job_variables(template, {"cpu": "512"})


def test_settings_fill_the_templates_defaults_and_prefect_accepts_it(template):
    from prefect.client.schemas.actions import WorkPoolCreate

    defaults = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    assert defaults["cluster"] == "fearless"
    assert defaults["task_role_arn"] == "arn:aws:iam::123:role/worker"
    assert defaults["network_configuration"]["subnets"] == ["subnet-1", "subnet-2"]
    assert defaults["env"]["FEARLESS_BACKEND"] == "aws"
    assert json.loads(defaults["env"]["FEARLESS_AWS_SUBNETS"]) == ["subnet-1", "subnet-2"]
    WorkPoolCreate(name="fearless-ecs", type="ecs", base_job_template=template)


def test_a_release_run_renders_into_a_sized_task_definition_and_run_task(template):
    """prefect-aws's own rendering, as the worker does it for a flow run."""
    from prefect_aws.workers.ecs_worker import ECSJobConfiguration

    values = ecs_job_variables(Resources(cpu=0.5, memory_mb=1024))
    config = asyncio.run(ECSJobConfiguration.from_template_and_values(template, values))
    assert (config.task_definition["cpu"], config.task_definition["memory"]) == (1024, 2048)
    assert config.task_run_request["overrides"]["cpu"] == 1024
    assert config.cluster == "fearless"


def test_flow_runs_on_ecs_rebuild_the_same_settings(monkeypatch):
    env = flow_run_env(Settings(**AWS, work_pool="fearless-ecs"))
    assert "FEARLESS_STATE_DIR" not in env and env["FEARLESS_WORK_POOL"] == "fearless-ecs"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    rebuilt = Settings()
    assert rebuilt.work_pool == "fearless-ecs"  # its queue is removed from the same pool
    for name, value in AWS.items():
        assert getattr(rebuilt, name) == value, name


def test_each_backend_has_its_kind_of_pool():
    assert kind_for(Settings()).type == "process"
    assert kind_for(Settings(**AWS)).type == "ecs"
    assert kind_for(Settings(**AWS)).project_dir(Settings(**AWS)) == "/opt/fearless"
