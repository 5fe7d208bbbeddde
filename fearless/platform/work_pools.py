"""The work pool the flows run on, and what each release run asks of it.

The embedded default uses a process pool (every flow run a subprocess); the AWS backend an
`ecs` pool (prefect-aws), where every flow run is one Fargate task sized by its job variables.
Which kind is a table keyed by backend; what a run asks for is a function of the pool's type,
read from the server, so a release never branches on the backend itself.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fearless.aws.prices import fargate_size
from fearless.platform import orphans
from fearless.settings import PROJECT_ROOT, Settings
from fearless.spec import Resources

ECS_TEMPLATE_FILE = PROJECT_ROOT / "deployments" / "ecs-base-job-template.json"
# The variables a release sets per run, each with where the template must use it.
PER_RUN_VARIABLES = {
    "cpu": ("task_definition", "task_run_request"),
    "memory": ("task_definition", "task_run_request"),
}


class WorkPoolError(ValueError):
    """A base job template that cannot size a run, or a pool of a kind Fearless does not know."""


def load_ecs_template(path: Path = ECS_TEMPLATE_FILE) -> dict[str, Any]:
    """The committed ECS base job template, checked to take the per-run variables."""
    try:
        template = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise WorkPoolError(f"{path}: cannot read the base job template: {exc}") from exc
    check_template(template, source=str(path))
    return template


def check_template(template: dict[str, Any], source: str = "base job template") -> None:
    """Each per-run variable is declared and reaches the task definition and the RunTask call."""
    variables = template.get("variables", {}).get("properties", {})
    config = template.get("job_configuration", {})
    for name, sections in PER_RUN_VARIABLES.items():
        if name not in variables:
            raise WorkPoolError(f"{source}: variables has no {name!r}")
        placeholder = re.compile(r"\{\{\s*" + name + r"\s*\}\}")
        for section in sections:
            if not placeholder.search(json.dumps(config.get(section, {}))):
                raise WorkPoolError(
                    f"{source}: job_configuration.{section} never uses {{{{ {name} }}}}"
                )


AUTH_STRING = "PREFECT_API_AUTH_STRING"
# The flow-run task runs Locust and the Evidently check besides the flow: never below this.
FLOW_RUN_FLOOR = Resources(cpu=1.0, memory_mb=2048)


def ecs_job_variables(resources: Resources) -> dict[str, int]:
    """CPU units and MiB of the smallest Fargate task with the spec's resources, and at least
    `FLOW_RUN_FLOOR` (0.5 vCPU, 1 GB -> 1024, 2048; 2 vCPU, 4 GB -> 2048, 4096)."""
    cpu = max(resources.cpu, FLOW_RUN_FLOOR.cpu)
    size = fargate_size(cpu, max(resources.memory_mb, FLOW_RUN_FLOOR.memory_mb))
    return {"cpu": size.cpu_units, "memory": size.memory_mib}


def no_job_variables(resources: Resources) -> dict[str, Any]:
    """A subprocess takes what the machine has: nothing to size."""
    return {}


def ecs_template_for(settings: Settings) -> dict[str, Any]:
    """The committed template with the defaults this deployment's settings give."""
    template = copy.deepcopy(load_ecs_template())
    defaults = {
        "cluster": settings.aws_cluster,
        "execution_role_arn": settings.aws_execution_role_arn,
        "task_role_arn": settings.aws_flow_task_role_arn,
        "image": settings.aws_flow_image,
        "vpc_id": settings.aws_vpc_id,  # prefect-aws wants it with a network_configuration
        # the worker module's group: out to the model APIs on 8080 and to AWS on 443
        "network_configuration": {
            "subnets": settings.aws_subnets,
            "securityGroups": settings.aws_flow_security_groups,
            "assignPublicIp": "DISABLED",
        },
        "cloudwatch_logs_options": {
            "awslogs-group": settings.aws_log_group,
            "awslogs-region": settings.aws_region,
            "awslogs-stream-prefix": "flow-runs",
        },
        # The auth string reaches a task only as an ECS secret: without a secret's ARN the
        # worker's own would go into RunTask's overrides, readable through DescribeTasks.
        "prefect_api_auth_string_secret_arn": settings.aws_prefect_auth_secret_arn,
        "env": {**flow_run_env(settings), **HEARTBEAT_ENV, AUTH_STRING: None},
    }
    if not settings.aws_flow_security_groups:
        raise WorkPoolError(
            "FEARLESS_AWS_FLOW_SECURITY_GROUPS is not set: flow-run tasks need the worker's "
            "security group to reach the model APIs (terraform output fearless_env has it)"
        )
    properties = template["variables"]["properties"]
    for name, value in defaults.items():
        if value or name == "env":
            properties[name]["default"] = value
    return template


# Seconds between a flow run's heartbeats (Prefect's minimum is 30). A release run whose
# heartbeats stop for HEARTBEAT_LOST_S lost its process: see deployments/automations.yaml.
FLOW_HEARTBEAT_S = 30
# A client retries a refused connection or a 503 7 times, waiting 2, 4, ... 128 s: a flow run
# or a worker outlasts its server's restart (seconds; minutes on a busy host), or a SQLite busy
# for a minute under a storm of releases, instead of crashing at its first call (the storm bench
# lost releases a worker could not label at submission, after Prefect's default 5 retries).
CLIENT_RETRY_ENV = {"PREFECT_CLIENT_MAX_RETRIES": "7"}
HEARTBEAT_ENV = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(FLOW_HEARTBEAT_S), **CLIENT_RETRY_ENV}


def process_template_for(settings: Settings) -> dict[str, Any]:
    """Prefect's process template, with flow runs that outlive their worker.

    By default a worker streams a flow run's output through a pipe; when the worker dies, the
    run's next log line meets a broken pipe and rich ends the process (a release then crashed
    mid-step, "aborted by Python system exit call"). Without the pipe the run goes on, its logs
    still reach the server; and it heartbeats, so a run whose process did die is noticed.
    """
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    properties = template["variables"]["properties"]
    properties["stream_output"]["default"] = False
    properties["env"]["default"] = dict(HEARTBEAT_ENV)
    # Started warm, forked from a parent that imported Prefect and the flows (flow_start).
    properties["command"]["default"] = f"{sys.executable} -m fearless.platform.flow_start"
    return template


# Settings of this machine, not of the platform: a flow-run task keeps its own.
LOCAL_ONLY = {
    *("state_dir", "server_host", "server_port", "worker_query_s", "inference_log_s3"),
    *("database", "workers", "pool_concurrency"),
}


def flow_run_env(settings: Settings) -> dict[str, str]:
    """The FEARLESS_* settings a flow run on ECS needs to build the same services."""
    env = {}
    for name in sorted(set(Settings.model_fields) - LOCAL_ONLY - {"run_id"}):
        value = getattr(settings, name)
        if value in ("", None, []):
            continue
        env[f"FEARLESS_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, list) else str(value)
        )
    return env


@dataclass(frozen=True)
class PoolKind:
    """A kind of work pool: its Prefect type, template, per-run job variables, project dir,
    whether its flow runs share one host (then load tests take turns: see `slots`), and how to
    tell that a run's process still runs (from the run's `infrastructure_pid`)."""

    type: str
    template: Callable[[Settings], dict[str, Any] | None]
    job_variables: Callable[[Resources], dict[str, Any]]
    project_dir: Callable[[Settings], str]
    shares_host: bool
    run_alive: Callable[[Settings, str | None], bool]


POOL_KINDS = {
    "process": PoolKind(
        "process",
        process_template_for,
        no_job_variables,
        lambda s: str(PROJECT_ROOT),
        shares_host=True,
        run_alive=lambda s, pid: orphans.engine_alive(pid),
    ),
    "ecs": PoolKind(
        "ecs",
        ecs_template_for,
        ecs_job_variables,
        lambda s: s.aws_flow_project_dir,
        shares_host=False,
        run_alive=orphans.ecs_task_alive,
    ),
}
BACKEND_POOLS = {"local": "process", "aws": "ecs"}


def pool_kind(pool_type: str) -> PoolKind:
    try:
        return POOL_KINDS[pool_type]
    except KeyError:
        known = ", ".join(sorted(POOL_KINDS))
        raise WorkPoolError(f"work pool type {pool_type!r} is not one of: {known}") from None


def kind_for(settings: Settings) -> PoolKind:
    """The kind of pool this backend's flows run on."""
    return pool_kind(BACKEND_POOLS[settings.backend])


def job_variables_for(pool_type: str, resources: Resources) -> dict[str, Any]:
    """What one release run asks of a pool of `pool_type` (nothing on a process pool)."""
    return pool_kind(pool_type).job_variables(resources)


def check_job_variables(template: dict[str, Any], job_variables: dict[str, Any]) -> None:
    """Validate job variables as the Prefect server does when a flow run is created."""
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    try:
        validate(
            job_variables,
            template["variables"],
            raise_on_error=True,
            preprocess=True,
            ignore_required=True,
            allow_none_with_default=True,
        )
    except ValidationError as exc:
        raise WorkPoolError(f"job variables {job_variables} refused: {exc}") from exc


def pool_limit_change(current: int | None, wanted: int | None) -> dict[str, int | None]:
    """The pool's concurrency limit to set, if any: `wanted` None leaves it as it is, 0 lifts
    it (Prefect's "no limit" is None)."""
    if wanted is None:
        return {}
    limit = wanted or None
    return {} if limit == current else {"concurrency_limit": limit}


def ensure_work_pool(client, settings: Settings) -> str:
    """Create the settings' pool of its backend's kind, or bring its template and its
    concurrency limit (`pool_concurrency`: releases beyond it wait Scheduled) up to date."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    kind = kind_for(settings)
    template = kind.template(settings)
    try:
        existing = client.read_work_pool(settings.work_pool)
    except ObjectNotFound:
        create = {"name": settings.work_pool, "type": kind.type}
        create |= pool_limit_change(None, settings.pool_concurrency)
        client.create_work_pool(
            WorkPoolCreate(**create, **({"base_job_template": template} if template else {}))
        )
        return "created"
    if existing.type != kind.type:
        raise WorkPoolError(
            f"work pool {settings.work_pool!r} is a {existing.type} pool; backend "
            f"{settings.backend!r} needs {kind.type}: set FEARLESS_WORK_POOL to another name"
        )
    update = pool_limit_change(existing.concurrency_limit, settings.pool_concurrency)
    if template and existing.base_job_template != template:
        update["base_job_template"] = template
    if update:
        client.update_work_pool(settings.work_pool, WorkPoolUpdate(**update))
        return "updated"
    return "unchanged"
