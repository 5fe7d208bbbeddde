"""Task definitions of model APIs: built fresh from settings, or derived from production's.

Deriving is what makes a test environment production-like by construction: production's
task definition is copied (cpu, memory, roles, environment, log configuration, health check,
sidecars) and only what is run-scoped is changed: the bundle's image and digest, the family,
the tags and the log stream prefix. `differences` lists whatever else differs, for the run's
evidence. Pure functions of plain dicts (what boto3 returns), so they are tested without AWS.
"""

from __future__ import annotations

import copy
import json

from fearless.aws import tag_list
from fearless.aws.prices import TaskSize, fargate_size
from fearless.environments import EnvironmentError_
from fearless.environments.ecs.config import (
    CONTAINER,
    DIGEST_VARIABLE,
    HEALTH_TELL,
    LOG_DIR,
    LOG_VARIABLE,
    LOG_VOLUME,
    PORT,
    REGION_VARIABLE,
    RUN_VARIABLE,
    SHADOW_SAMPLE_VARIABLE,
    SHADOW_URL_VARIABLE,
    EcsConfig,
)

# What register_task_definition accepts of what describe_task_definition returns.
REGISTERED = (
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "runtimePlatform",
    "ephemeralStorage",
    "proxyConfiguration",
    "pidMode",
    "ipcMode",
)
COMPARED = (*REGISTERED, "cpu", "memory")
# Run-scoped by design, so never reported as a difference.
STREAM_PREFIX = "awslogs-stream-prefix"
SHADOW_VARIABLES = (SHADOW_URL_VARIABLE, SHADOW_SAMPLE_VARIABLE)
# (a production revision's shadow variables too: no test environment or shadow copies them.)
RUN_SCOPED_VARIABLES = (DIGEST_VARIABLE, LOG_VARIABLE, RUN_VARIABLE, *SHADOW_VARIABLES)
# The image's CMD (fearless.bundles.image.dockerfile_for), used when a definition names no command.
SERVE_COMMAND = ("python", "-m", "fearless.serving", "--bundle", "/bundle", "--host", "0.0.0.0")
SERVE_COMMAND += ("--port", str(PORT))
HEALTH_COMMAND = ("CMD", "python", "-m", "fearless.bundles.health")


def health_check_command(log_dir: str | None) -> list[str]:
    """The container health check: /ready answers, and (with `log_dir`) the log is writable."""
    if log_dir is None:
        return list(HEALTH_COMMAND)
    return [*HEALTH_COMMAND, "--log-dir", log_dir, "--tell", HEALTH_TELL]


def task_size(cpu: float, memory_mb: int, production: dict | None) -> TaskSize:
    """The spec's size, but never smaller than production's: the test runs what production will."""
    if production is None:
        return fargate_size(cpu, memory_mb)
    units, memory = int(production["cpu"]), int(production["memory"])
    return fargate_size(max(cpu, units / 1024), max(memory_mb, memory))


def fresh_definition(
    config: EcsConfig, family: str, image: str, digest: str, size: TaskSize, stream: str
) -> dict:
    """register_task_definition arguments when there is no production definition to copy."""
    container = {
        "name": CONTAINER,
        "image": image,
        "essential": True,
        "portMappings": [{"containerPort": PORT, "protocol": "tcp"}],
        "environment": [{"name": DIGEST_VARIABLE, "value": digest}],
        "healthCheck": {
            "command": health_check_command(None),
            "interval": 10,
            "timeout": 3,
            "retries": 3,
            "startPeriod": 30,
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": config.log_group,
                "awslogs-region": config.region,
                STREAM_PREFIX: stream,
            },
        },
    }
    return {
        "family": family,
        "taskRoleArn": config.task_role_arn,
        "executionRoleArn": config.execution_role_arn,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(size.cpu_units),
        "memory": str(size.memory_mib),
        "runtimePlatform": {
            "cpuArchitecture": config.architecture.upper(),
            "operatingSystemFamily": "LINUX",
        },
        "containerDefinitions": [container],
    }


def derived_definition(
    production: dict, family: str, image: str, digest: str, size: TaskSize, stream: str | None
) -> dict:
    """Production's task definition with only the bundle and the run-scoped names changed
    (`stream`: the log stream prefix; None keeps production's)."""
    args = {k: copy.deepcopy(production[k]) for k in REGISTERED if production.get(k)}
    containers = args.get("containerDefinitions", [])
    if not any(c["name"] == CONTAINER for c in containers):
        raise EnvironmentError_(
            f"production task definition {production.get('taskDefinitionArn')} has no "
            f"container named {CONTAINER!r} to put the bundle's image in"
        )
    for container in containers:
        options = (container.get("logConfiguration") or {}).get("options") or {}
        if STREAM_PREFIX in options and stream is not None:
            options[STREAM_PREFIX] = stream
        if container["name"] == CONTAINER:
            container["image"] = image
            dropped = (DIGEST_VARIABLE, *SHADOW_VARIABLES)  # copies to nothing unless re-added
            others = [e for e in container.get("environment", []) if e["name"] not in dropped]
            container["environment"] = [*others, {"name": DIGEST_VARIABLE, "value": digest}]
    return {**args, "family": family, "cpu": str(size.cpu_units), "memory": str(size.memory_mib)}


def with_inference_log(args: dict, location: str, run_id: str, region: str) -> dict:
    """`args` whose model API logs every prediction under LOG_DIR and ships it to `location`
    (`s3://bucket/prefix`), tagged with `run_id` ('' for production).

    LOG_DIR gets a volume of its own (the root filesystem may be read-only; the image makes the
    volume its user's), and the health check fails while LOG_DIR cannot be written, so such a
    task is replaced, and a deployment of it rolled back, instead of refusing predictions.
    A revision copied from one made before either (an older production) gains both."""
    args = copy.deepcopy(args)
    container = next(c for c in args["containerDefinitions"] if c["name"] == CONTAINER)
    command = list(container.get("command") or SERVE_COMMAND)
    if "--log-dir" in command:  # production's own, copied: replace it
        at = command.index("--log-dir")
        del command[at : at + 2]
    container["command"] = [*command, "--log-dir", LOG_DIR]
    mounts = [m for m in container.get("mountPoints", []) if m["containerPath"] != LOG_DIR]
    container["mountPoints"] = [
        *mounts,
        {"sourceVolume": LOG_VOLUME, "containerPath": LOG_DIR, "readOnly": False},
    ]
    volumes = [v for v in args.get("volumes", []) if v["name"] != LOG_VOLUME]
    args["volumes"] = [*volumes, {"name": LOG_VOLUME}]
    health = container.get("healthCheck") or {"interval": 10, "timeout": 3, "retries": 3}
    container["healthCheck"] = {**health, "command": health_check_command(LOG_DIR)}
    values = {LOG_VARIABLE: location, RUN_VARIABLE: run_id, REGION_VARIABLE: region}
    kept = [e for e in container.get("environment", []) if e["name"] not in values]
    container["environment"] = [*kept, *({"name": k, "value": v} for k, v in values.items() if v)]
    return args


def with_shadow_forwarding(args: dict, url: str, sample: float) -> dict:
    """`args` whose model API copies `sample` of its prediction requests to `url` (a bake's
    shadow of the previous version, on ECS where the ALB cannot mirror)."""
    args = copy.deepcopy(args)
    container = next(c for c in args["containerDefinitions"] if c["name"] == CONTAINER)
    kept = [e for e in container.get("environment", []) if e["name"] not in SHADOW_VARIABLES]
    container["environment"] = [
        *kept,
        {"name": SHADOW_URL_VARIABLE, "value": url},
        {"name": SHADOW_SAMPLE_VARIABLE, "value": f"{sample:g}"},
    ]
    return args


def with_tags(args: dict, tags: dict[str, str]) -> dict:
    return {**args, "tags": tag_list(tags)}


def differences(
    production: dict, production_service: dict, env: dict, env_service: dict
) -> list[str]:
    """What differs between production and a test environment, beyond the run-scoped fields."""
    found = []
    prod, test = _flat(_comparable(production)), _flat(_comparable(env))
    for path in sorted(prod.keys() | test.keys()):
        if prod.get(path) == test.get(path):
            continue
        line = (
            f"{path}: production {_show(prod.get(path))}, this environment {_show(test.get(path))}"
        )
        if path in ("cpu", "memory") and int(test.get(path) or 0) > int(prod.get(path) or 0):
            line += " (the bundle's spec asks more than production has)"
        found.append(line)
    prod, test = _flat(_service(production_service)), _flat(_service(env_service))
    for path in sorted(prod.keys() | test.keys()):
        if prod.get(path) != test.get(path):
            found.append(
                f"service.{path}: production {_show(prod.get(path))}, "
                f"this environment {_show(test.get(path))}"
            )
    return found


def digest_of(definition: dict) -> str:
    """The bundle digest a task definition runs ('' for one no Fearless release made)."""
    for container in definition.get("containerDefinitions", []):
        for variable in container.get("environment", []) if container["name"] == CONTAINER else []:
            if variable["name"] == DIGEST_VARIABLE:
                return variable["value"]
    return ""


def _comparable(definition: dict) -> dict:
    shown = {k: copy.deepcopy(definition.get(k)) for k in COMPARED}
    containers = {}
    for container in shown.pop("containerDefinitions") or []:
        options = (container.get("logConfiguration") or {}).get("options") or {}
        options.pop(STREAM_PREFIX, None)
        environment = {e["name"]: e["value"] for e in container.pop("environment", None) or []}
        if container["name"] == CONTAINER:
            for name in RUN_SCOPED_VARIABLES:
                environment.pop(name, None)
            container["image"] = _repository(container.get("image", ""))
        container["environment"] = environment
        containers[container.pop("name")] = container
    shown["containers"] = containers
    return shown


def _service(service: dict) -> dict:
    network = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    return {
        "launchType": service.get("launchType"),
        "platformVersion": service.get("platformVersion"),
        "subnets": sorted(network.get("subnets") or []),
        "securityGroups": sorted(network.get("securityGroups") or []),
        "assignPublicIp": network.get("assignPublicIp"),
    }


def _repository(image: str) -> str:
    """The repository an image comes from, without the tag or digest that names the bundle."""
    name = image.split("@")[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _flat(value, path: str = "") -> dict[str, object]:
    """Nested dicts as {dotted.path: leaf}; empty values dropped, so absent equals empty."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{path}.{key}" if path else str(key)))
        return out
    return {} if value in (None, "", [], {}) else {path: value}


def _show(value) -> str:
    return "(none)" if value is None else json.dumps(value, sort_keys=True, default=str)
