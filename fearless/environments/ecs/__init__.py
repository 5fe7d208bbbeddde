"""The ECS backend of test environments (see `backend`), split by what each part does."""

from fearless.environments.ecs.backend import EcsEnvironments
from fearless.environments.ecs.config import EcsConfig

__all__ = ["EcsConfig", "EcsEnvironments"]
