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
    return Services(
        settings=settings,
        registry=LocalRegistry(paths.registry),
        environments=LocalEnvironments(paths.environments, paths.runs, timeout, launcher),
        production=LocalProductionService(
            paths.production, paths.inference_logs, timeout, launcher
        ),
        launcher=launcher,
    )
