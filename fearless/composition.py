"""The composition root: every outside system is built here, once, from settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fearless.settings import PROJECT_ROOT, Settings, get_settings

if TYPE_CHECKING:  # imported where built: a command reading the registry pays for no more
    from fearless.environments import EnvironmentBackend
    from fearless.loadtest.fleet import LoadGenerator
    from fearless.platform.preload import Launcher
    from fearless.platform.reports import Reports
    from fearless.production.service import ProductionService
    from fearless.registry import Registry

# (model, since) -> a local folder holding that model's production inference log since then.
ProductionLogs = Callable[[str, datetime], Path]
# (release id) -> what drives that release's load tests.
LoadGenerators = Callable[[str], "LoadGenerator"]


@dataclass(frozen=True)
class Services:
    settings: Settings
    registry: Registry
    environments: EnvironmentBackend
    production: ProductionService[Any]
    launcher: Launcher
    production_logs: ProductionLogs
    reports: Reports
    load_generator: LoadGenerators


def build_services(settings: Settings | None = None) -> Services:
    from fearless.environments.local import LocalEnvironments
    from fearless.platform.preload import Launcher
    from fearless.production.board import AnnouncedProduction
    from fearless.production.local import LocalProductionService

    settings = settings or get_settings()
    paths = settings.paths
    launcher = Launcher(paths.processes, cwd=PROJECT_ROOT)
    timeout = settings.health_timeout_s
    if settings.backend == "aws":
        return _aws_services(settings, launcher)
    return Services(
        settings=settings,
        registry=build_registry(settings),
        environments=LocalEnvironments(paths.environments, paths.runs, timeout, launcher),
        production=AnnouncedProduction(
            LocalProductionService(paths.production, paths.inference_logs, timeout, launcher)
        ),
        launcher=launcher,
        production_logs=lambda model, since: paths.inference_logs,  # written right there
        reports=build_reports(settings),
        load_generator=lambda release_id: local_load_generator(settings),
    )


def local_load_generator(settings: Settings) -> LoadGenerator:
    """Locust on this host, as many processes as the rate needs from its calibrated cost per
    request; the model APIs under test share the host, so they keep a core of their own."""
    from fearless.loadtest.sizing import SizedLocust, available_cores

    return SizedLocust(settings.paths.loadgen, cores=max(1, available_cores() - 1))


def ecs_load_generator(settings: Settings, ecs, s3, release_id: str) -> LoadGenerator:
    """A Locust master and its workers as ECS tasks (`fearless.loadtest.ecs_fleet`), as many
    workers as the rate needs at this host's calibrated cost (the tasks run the same image)."""
    from fearless.loadtest.ecs_fleet import EcsFleet, EcsFleetTasks
    from fearless.loadtest.fleet import LocustFleet
    from fearless.loadtest.sizing import SizedLocust

    sizing = SizedLocust(settings.paths.loadgen, cores=settings.aws_loadgen_max_workers)
    tasks = EcsFleetTasks(
        cluster=settings.aws_cluster,
        task_definition=settings.aws_loadgen_task_definition,
        subnets=settings.aws_subnets,
        security_groups=settings.aws_flow_security_groups,
        project_dir=settings.aws_flow_project_dir,
        tags={"fearless:creator": settings.aws_creator},
    )
    return EcsFleet(
        tasks, LocustFleet(workers=1, wait_for_workers_s=FARGATE_START_S), ecs, s3,
        settings.aws_bucket, release_id,
        workers_for=lambda profile, traffic: max(1, sizing.plan(profile, traffic).processes),
    )  # fmt: skip


FARGATE_START_S = 300  # what the master waits for its workers: a Fargate task starts in 1-2 min


def build_registry(settings: Settings) -> Registry:
    """The registry alone, for commands that only read it."""
    if settings.backend == "aws":
        from fearless.registry.s3 import S3Registry

        s3 = _aws_client(settings, "s3")
        return S3Registry(
            s3, settings.aws_bucket, settings.aws_registry_prefix, settings.paths.registry
        )
    from fearless.registry.local import LocalRegistry

    return LocalRegistry(settings.paths.registry)


def build_reports(settings: Settings) -> Reports:
    """Where the reports a person is sent to are reached: the server's report route, or S3."""
    from fearless.platform.reports import S3Reports, ServedReports

    runs = settings.paths.runs
    if settings.backend == "aws":
        s3 = _aws_client(settings, "s3")
        prefix, expiry = settings.aws_reports_prefix, settings.report_link_expiry_s
        return S3Reports(s3, settings.aws_bucket, prefix, runs, expiry)
    return ServedReports(runs, settings.reports_url, os.environ.get("PREFECT_API_AUTH_STRING"))


def _aws_client(settings: Settings, service: str):
    from fearless.aws import aws_client

    return aws_client(settings, service)


def _aws_services(settings: Settings, launcher: Launcher) -> Services:
    """S3 registry, ECS environments and production; boto3 is imported only on this path."""
    from fearless.aws import aws_client, make_session
    from fearless.aws.inference_logs import ProductionLogSync, production_logs
    from fearless.environments.ecs.backend import EcsEnvironments
    from fearless.environments.ecs.config import EcsConfig
    from fearless.platform.reports import S3Reports
    from fearless.production.board import AnnouncedProduction
    from fearless.production.ecs import EcsProductionService, ProductionScaling
    from fearless.registry.s3 import S3Registry

    session = make_session(settings.aws_region)

    def make(service: str):
        return aws_client(settings, service, session)

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
        bucket=settings.aws_bucket,
        inference_prefix=settings.aws_inference_prefix,
    )
    ecs, s3, paths = make("ecs"), make("s3"), settings.paths
    scaling = ProductionScaling(
        settings.aws_production_min_tasks,
        settings.aws_production_max_tasks,
        settings.aws_production_target_cpu_percent,
    )
    environments = EcsEnvironments(
        config, ecs, make("servicediscovery"), paths.runs, s3=s3, ecr=make("ecr")
    )
    production = EcsProductionService(
        config, ecs, make("application-autoscaling"), scaling, shadows=environments
    )
    return Services(
        settings=settings,
        registry=S3Registry(s3, settings.aws_bucket, settings.aws_registry_prefix, paths.registry),
        environments=environments,
        production=AnnouncedProduction(production),
        launcher=launcher,
        production_logs=ProductionLogSync(
            s3,
            production_logs(settings.aws_bucket, settings.aws_inference_prefix),
            paths.inference_logs,
        ),
        reports=S3Reports(
            s3,
            settings.aws_bucket,
            settings.aws_reports_prefix,
            paths.runs,
            settings.report_link_expiry_s,
        ),
        load_generator=lambda release_id: (
            ecs_load_generator(settings, ecs, s3, release_id)
            if settings.aws_loadgen_task_definition
            else local_load_generator(settings)
        ),
    )
