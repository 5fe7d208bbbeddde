"""What the ECS backends are configured with, and the names and tags they find things by.

Names are conventions shared with Terraform (`infra/modules/production_service`): a model's
production service is `<model>-production` in the cluster; a test environment's ECS service
and task definition family are `fearless-<release>-<role>`, its DNS name `<role>-<release>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fearless.aws import TAG_PREFIX
from fearless.bundles import image
from fearless.environments import Environment

PORT = 8080
CONTAINER = "model-api"
NAME_PREFIX = "fearless-"
PRODUCTION_SUFFIX = "-production"
DIGEST_VARIABLE = "FEARLESS_BUNDLE_DIGEST"
LOG_VARIABLE = "FEARLESS_INFERENCE_LOG_S3"
RUN_VARIABLE = "FEARLESS_RUN_ID"
REGION_VARIABLE = "FEARLESS_AWS_REGION"
# Where (and how much of its traffic) a production model API copies to its shadow in a bake
# (fearless.serving.forwarding); only production revisions carry them.
SHADOW_URL_VARIABLE = "FEARLESS_SHADOW_URL"
SHADOW_SAMPLE_VARIABLE = "FEARLESS_SHADOW_SAMPLE"
SHADOW_ROLE = "shadow"
# What a load test's ECS tasks are started by (fearless.loadtest.ecs_fleet), so a teardown
# finds those a lost flow run left running.
LOADGEN_STARTED_BY = "fearless-loadtest"
# Where a model API task logs each prediction before shipping it: a volume of its own, because
# the root filesystem is read-only, at a path the image declares a VOLUME and gives its user.
LOG_DIR = image.LOG_DIR
LOG_VOLUME = "inference-log"
# The container's health check (fearless.bundles.health) appends why it fails here: the model
# API's stderr, which reaches the task's log stream (ECS keeps no health check output).
HEALTH_TELL = "/proc/1/fd/2"


@dataclass(frozen=True)
class EcsConfig:
    region: str
    cluster: str
    subnets: list[str]
    security_groups: list[str]
    image_repository: str
    namespace_id: str
    execution_role_arn: str
    task_role_arn: str
    log_group: str
    creator: str
    architecture: str = "x86_64"
    bucket: str = ""
    """Where model APIs ship their inference logs; empty: they keep them in the task."""
    inference_prefix: str = "inference"

    def image_uri(self, short_digest: str) -> str:
        return f"{self.image_repository}:{short_digest}"


def environment_names(release_id: str, role: str) -> tuple[str, str]:
    """(ECS service and task definition family, Cloud Map service) of one environment."""
    return f"{NAME_PREFIX}{release_id}-{role}", f"{role}-{release_id}"


def production_service_name(model: str) -> str:
    return f"{model}{PRODUCTION_SUFFIX}"


def shadow_dns_name(model: str) -> str:
    """The Cloud Map name of a model's shadow in a bake: one per model, so production's
    revisions can name it before any bake starts one (it resolves only while one runs)."""
    return f"{model}-{SHADOW_ROLE}"


def environment_from_tags(
    tags: dict, dns: str | None, handle: dict, created_at: datetime
) -> Environment:
    def tag(key: str) -> str:
        return tags[f"{TAG_PREFIX}{key}"]

    return Environment(
        release_id=tag("release-id"),
        role=tag("role"),
        model=tag("model"),
        digest=tag("digest"),
        url=f"http://{dns}:{PORT}" if dns else "",
        created_at=created_at,
        expires_at=datetime.fromisoformat(tag("expires-at")),
        handle=handle,
    )
