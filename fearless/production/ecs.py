"""The production service of each model on ECS: `<model>-production`, behind the internal ALB.

Terraform (`infra/modules/production_service`) creates the service with its first task
definition, target group and autoscaling. A promotion then registers a revision derived from
the running one with only the bundle changed (its inference log shipped under the production
prefix, which the nightly drift check reads), rolls the service to it with ECS's deployment
circuit breaker (tasks that never get healthy roll the service back by themselves), and
asserts the same target-tracking autoscaling Terraform declares (`ProductionScaling`'s
defaults are the module's variable defaults; tests/unit/test_infra.py checks they agree).

Shadow traffic in a bake: the ALB cannot mirror, so each production revision's model API
copies a sample of its requests (`bake.shadow_sample`) to `<model>-shadow` in the
environments' Cloud Map namespace (fearless.serving.forwarding), a name that resolves only
while a bake runs the previous version there: a one-task environment of the release (role
`shadow`, tagged, torn down when the window ends, swept by the janitor if a worker died).
Both sides ship their inference logs to S3; the window pairs the rows by request id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from fearless.aws import TAG_PREFIX, tag_dict
from fearless.aws.inference_logs import production_logs, sync_inference_logs
from fearless.bundles.bundle import Bundle
from fearless.environments import EnvironmentError_
from fearless.environments.ecs import definitions
from fearless.environments.ecs.config import (
    PORT,
    SHADOW_ROLE,
    EcsConfig,
    production_service_name,
    shadow_dns_name,
)
from fearless.environments.ecs.inventory import Inventory
from fearless.environments.ecs.waiting import wait_stable_and_healthy
from fearless.production.bake import WindowReader, scrape_metrics
from fearless.production.shadow import Chunks, ShadowPairs, ShadowStart

log = logging.getLogger(__name__)

URL_TAG = f"{TAG_PREFIX}url"
SCALING_POLICY_SUFFIX = "-cpu"
SCALABLE_DIMENSION = "ecs:service:DesiredCount"
CIRCUIT_BREAKER = {"enable": True, "rollback": True}
DEPLOYMENT = {
    "deploymentCircuitBreaker": CIRCUIT_BREAKER,
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


# How long a promotion may take to settle: a deployment that fails (image pull, the ALB's
# health check grace, every container health retry, the circuit breaker's failed launches),
# then its rollback, with old targets drained (deregistration_delay) each time.
# tests/unit/test_infra_production.py checks it covers what the Terraform module declares.
PROMOTION_TIMEOUT_S = 1800
# How long a window that ended waits for a shadow still being created, before it removes
# what that creation left (the janitor sweeps anything later, by its tags and expiry).
SHADOW_STOP_WAIT_S = 60.0
SHADOW_GRACE = timedelta(minutes=15)  # a shadow's expiry past its window's end
# S3 keeps upload times to the second, on its own clock: chunks uploaded up to this long
# before the shadow started are fetched too (other versions' rows are left out by digest).
UPLOAD_CLOCK_SLACK = timedelta(minutes=1)


class ProductionError(RuntimeError):
    """The production service is missing, or a deployment to it did not complete."""


@dataclass(frozen=True)
class ProductionScaling:
    """Target tracking on average CPU; the defaults are those of the Terraform module."""

    min_tasks: int = 2
    max_tasks: int = 10
    target_cpu_percent: float = 60.0
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60

    def __post_init__(self) -> None:
        if not 1 <= self.min_tasks <= self.max_tasks:
            raise ValueError(
                f"production scaling needs 1 <= min_tasks <= max_tasks, "
                f"got {self.min_tasks} and {self.max_tasks}"
            )
        if not 0 < self.target_cpu_percent <= 100:
            raise ValueError(f"target_cpu_percent {self.target_cpu_percent} is not in (0, 100]")


def scaling_policy_name(model: str) -> str:
    return f"{production_service_name(model)}{SCALING_POLICY_SUFFIX}"


class EcsProductionInstance(BaseModel):
    """One task definition revision of a model's production service."""

    model: str
    digest: str
    url: str
    handle: dict  # task_definition_arn, service_arn


class EcsProductionService:
    def __init__(
        self,
        config: EcsConfig,
        ecs,
        autoscaling,
        scaling: ProductionScaling | None = None,
        waiter: Callable[[EcsProductionInstance], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        shadows=None,
    ) -> None:
        """`waiter` blocks until a switch has deployed (default: healthy, not rolled back);
        `shadows` (the ECS environments backend, with its S3 client) runs a bake's shadow and
        fetches both sides' inference logs (without it, a bake judges errors and latency only)."""
        self.config, self.ecs, self.autoscaling = config, ecs, autoscaling
        self.scaling = scaling or ProductionScaling()
        self.inventory = Inventory(config, ecs, discovery=None, sleep=sleep)
        self.waiter = waiter or self._wait_deployed
        self.sleep = sleep
        self.shadows = shadows

    def current(self, model: str) -> EcsProductionInstance | None:
        found = self.inventory.production(model)
        if found is None:
            return None
        service, definition = found
        return self._instance(model, service, definition)

    def start(self, bundle: Bundle) -> EcsProductionInstance:
        """Register (not yet deploy) a revision of production's task definition for `bundle`."""
        service, running = self._production(bundle.name)
        resources = bundle.spec.resources
        args = definitions.derived_definition(
            running,
            running["family"],
            self.config.image_uri(bundle.short_digest),
            bundle.digest,
            definitions.task_size(resources.cpu, resources.memory_mb, running),
            stream=None,
        )
        if self.config.bucket:
            where = production_logs(self.config.bucket, self.config.inference_prefix)
            args = definitions.with_inference_log(args, where.url, "", self.config.region)
        if self._shadows_possible() and bundle.spec.bake.shadow:
            url = self.shadow_url(bundle.name)
            args = definitions.with_shadow_forwarding(args, url, bundle.spec.bake.shadow_sample)
        tags = {
            f"{TAG_PREFIX}model": bundle.name,
            f"{TAG_PREFIX}digest": bundle.digest,
            f"{TAG_PREFIX}creator": self.config.creator,
        }
        registered = self.ecs.register_task_definition(**definitions.with_tags(args, tags))
        return self._instance(bundle.name, service, registered["taskDefinition"])

    def switch(self, instance: EcsProductionInstance) -> EcsProductionInstance | None:
        """Roll the service to `instance` (circuit breaker, rollback); return what ran before."""
        previous = self.current(instance.model)
        name = production_service_name(instance.model)
        self.register_autoscaling(instance.model)
        self.ecs.update_service(
            cluster=self.config.cluster,
            service=name,
            taskDefinition=instance.handle["task_definition_arn"],
            deploymentConfiguration=DEPLOYMENT,
        )
        self.waiter(instance)
        return previous

    def discard(self, instance: EcsProductionInstance) -> None:
        """Deregister a started revision that was never deployed; the running one is kept."""
        running = self.current(instance.model)
        arn = instance.handle["task_definition_arn"]
        if running is None or running.handle["task_definition_arn"] != arn:
            self.ecs.deregister_task_definition(taskDefinition=arn)

    def stop(self, model: str) -> list[str]:
        """Nothing to stop: a production service outlives the local server; Terraform owns it."""
        return []

    def stop_all(self) -> list[str]:
        return []

    def shadow_url(self, model: str) -> str:
        """Where production's model API copies requests in a bake (resolves only in one)."""
        return f"http://{shadow_dns_name(model)}.{self.shadows.inventory.namespace_name()}:{PORT}"

    def _shadows_possible(self) -> bool:
        return self.shadows is not None and self.shadows.s3 is not None and bool(self.config.bucket)

    @contextmanager
    def bake_window(
        self,
        model: str,
        shadow: Bundle | None = None,
        release_id: str | None = None,
        until: datetime | None = None,
    ) -> Iterator[WindowReader | None]:
        """Production's figures from `/metrics` at its URL; with `shadow` (the previous
        version) and the release it runs for, also the previous version started as the
        release's `shadow` environment, and the comparison of both sides' predictions."""
        serving = self.current(model)
        if serving is None or not serving.url:
            yield None
            return
        start = ShadowStart()
        if shadow is not None and release_id and self._shadows_possible():
            expires = (until or datetime.now(UTC)) + SHADOW_GRACE
            start.start(lambda: self._compare_with(shadow, serving, release_id, expires))
        try:
            yield start.reader(lambda: scrape_metrics(serving.url))
        finally:
            if start.thread is not None:
                self._remove_shadow(release_id)
                start.join(SHADOW_STOP_WAIT_S)
                self._remove_shadow(release_id)  # what its start made while it was removed
        if start.error is not None:
            raise start.error

    def _remove_shadow(self, release_id: str) -> None:
        """Remove the release's shadow; on failure say so and go on: the bake's verdict stands,
        and the release's teardown (or the janitor, by its tags) removes it later."""
        try:
            self.shadows.teardown_role(release_id, SHADOW_ROLE)
        except Exception as exc:  # noqa: BLE001 (anything boto3 raises)
            log.warning("the shadow of %s is left for the release's teardown: %s", release_id, exc)

    def _compare_with(
        self, shadow: Bundle, serving: EcsProductionInstance, release_id: str, expires: datetime
    ) -> ShadowPairs | None:
        """Run the shadow, then pair the rows both sides ship from now on; None (no
        comparison) if it cannot start."""
        since = datetime.now(UTC) - UPLOAD_CLOCK_SLACK
        try:
            env = self.shadows.provision(
                release_id, SHADOW_ROLE, shadow, expires, dns_name=shadow_dns_name(shadow.name)
            )
        except EnvironmentError_ as exc:
            log.warning("no shadow for the bake of %s: %s", serving.digest, exc)
            return None
        live = self.shadows.runs_root / release_id / "inference" / "production"
        where = production_logs(self.config.bucket, self.config.inference_prefix)

        def fetch_live() -> Path:
            sync_inference_logs(self.shadows.s3, where, live, shadow.name, modified_since=since)
            return live / shadow.name

        def fetch_shadow() -> Path:
            return self.shadows.inference_log_dir(env) / shadow.name

        return ShadowPairs(Chunks(serving.digest, fetch_live), Chunks(shadow.digest, fetch_shadow))

    def register_autoscaling(self, model: str) -> None:
        """Target tracking on average CPU, as Terraform declares it (re-asserting is harmless)."""
        cluster = self.config.cluster.split("/")[-1]
        target = {
            "ServiceNamespace": "ecs",
            "ResourceId": f"service/{cluster}/{production_service_name(model)}",
            "ScalableDimension": SCALABLE_DIMENSION,
        }
        scaling = self.scaling
        self.autoscaling.register_scalable_target(
            **target, MinCapacity=scaling.min_tasks, MaxCapacity=scaling.max_tasks
        )
        self.autoscaling.put_scaling_policy(
            **target,
            PolicyName=scaling_policy_name(model),
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": scaling.target_cpu_percent,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
                },
                "ScaleInCooldown": scaling.scale_in_cooldown_s,
                "ScaleOutCooldown": scaling.scale_out_cooldown_s,
            },
        )

    def _production(self, model: str) -> tuple[dict, dict]:
        found = self.inventory.production(model)
        if found is None:
            raise ProductionError(
                f"no production service {production_service_name(model)!r} in cluster "
                f"{self.config.cluster}: create it with infra/modules/production_service"
            )
        return found

    def _instance(self, model: str, service: dict, definition: dict) -> EcsProductionInstance:
        return EcsProductionInstance(
            model=model,
            digest=definitions.digest_of(definition),
            url=tag_dict(service.get("tags")).get(URL_TAG, ""),
            handle={
                "task_definition_arn": definition["taskDefinitionArn"],
                "service_arn": service["serviceArn"],
            },
        )

    def check_deployed(self, instance: EcsProductionInstance) -> None:
        """The service runs `instance`; if not, the circuit breaker rolled it back."""
        arn = instance.handle["service_arn"]
        service = self.ecs.describe_services(cluster=self.config.cluster, services=[arn])
        running = service["services"][0]["taskDefinition"]
        if running != instance.handle["task_definition_arn"]:
            raise ProductionError(
                f"deploying {instance.digest} to {instance.model} failed; "
                f"ECS rolled the service back to {running}"
            )

    def _wait_deployed(self, instance: EcsProductionInstance) -> None:
        arn = instance.handle["service_arn"]
        wait_stable_and_healthy(
            self.ecs, self.config.cluster, arn, timeout_s=PROMOTION_TIMEOUT_S, sleep=self.sleep
        )
        self.check_deployed(instance)
