"""The composition root: every outside system is built here, once, from settings."""

from __future__ import annotations

from dataclasses import dataclass

from fearless.environments import EnvironmentBackend
from fearless.environments.local import LocalEnvironments
from fearless.preload import Launcher
from fearless.production import LocalProductionService
from fearless.registry import Registry
from fearless.registry.local import LocalRegistry
from fearless.settings import PROJECT_ROOT, Settings, get_settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: Registry
    environments: EnvironmentBackend
    production: LocalProductionService
    launcher: Launcher


def build_services(settings: Settings | None = None) -> Services:
    settings = settings or get_settings()
    paths = settings.paths
    launcher = Launcher(paths.processes, cwd=PROJECT_ROOT)
    timeout = settings.health_timeout_s
    if settings.backend == "aws":
        registry, environments = _aws_backends(settings)
    else:
        registry = LocalRegistry(paths.registry)
        environments = LocalEnvironments(paths.environments, paths.runs, timeout, launcher)
    return Services(
        settings=settings,
        registry=registry,
        environments=environments,
        production=LocalProductionService(
            paths.production, paths.inference_logs, timeout, launcher
        ),
        launcher=launcher,
    )


def _aws_backends(settings: Settings) -> tuple[Registry, EnvironmentBackend]:
    """The S3 registry and ECS environments; boto3 is imported only on this path."""
    from fearless.aws import client, make_session
    from fearless.environments.ecs import EcsConfig, EcsEnvironments
    from fearless.registry.s3 import S3Registry

    session = make_session(settings.aws_region)
    endpoint = settings.aws_endpoint_url
    config = EcsConfig(
        region=settings.aws_region,
        cluster=settings.aws_cluster,
        subnets=settings.aws_subnets,
        security_groups=settings.aws_security_groups,
        image_repository=settings.aws_ecr_repository,
        namespace_id=settings.aws_namespace_id,
        execution_role_arn=settings.aws_execution_role_arn,
        task_role_arn=settings.aws_task_role_arn,
        log_group=settings.aws_log_group,
        creator=settings.aws_creator,
    )
    registry = S3Registry(
        client(session, "s3", endpoint),
        settings.aws_bucket,
        settings.aws_registry_prefix,
        settings.paths.registry,
    )
    environments = EcsEnvironments(
        config,
        client(session, "ecs", endpoint),
        client(session, "servicediscovery", endpoint),
        settings.paths.runs,
    )
    return registry, environments
