"""Test environments as Fargate services on ECS, production-like when production is on ECS.

Each environment is three resources, created in this order and removed in reverse: a Cloud Map
service (the DNS name the load generator calls, `<role>-<release>.<namespace>:8080`), a task
definition for the bundle's image, and an ECS service running one task of it. None is created
unless that image is in ECR (tasks that cannot pull it would only fail slowly). When the model's
production service exists (`<model>-production` in the cluster), the task definition and the
network configuration are copied from it; otherwise they are built from settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fearless.aws import TAG_PREFIX, environment_tags, tag_list
from fearless.aws.ecr import image_exists
from fearless.aws.inference_logs import environment_logs, sync_inference_logs
from fearless.aws.prices import ComputeCost, compute_cost
from fearless.bundles.bundle import Bundle
from fearless.environments import Environment, EnvironmentDown, EnvironmentError_
from fearless.environments.ecs import definitions
from fearless.environments.ecs.config import (
    LOADGEN_STARTED_BY,
    EcsConfig,
    environment_from_tags,
    environment_names,
)
from fearless.environments.ecs.inventory import Inventory
from fearless.environments.ecs.waiting import wait_stable_and_healthy
from fearless.ids import checked_id

Waiter = Callable[[Environment], None]


class EcsEnvironments:
    def __init__(
        self,
        config: EcsConfig,
        ecs,
        discovery,
        runs_root: Path,
        waiter: Waiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        s3=None,
        ecr=None,
        health_timeout_s: float = 600,
    ) -> None:
        """`waiter` blocks until an environment answers (default: ECS stable + task healthy,
        failing at once when a task fails its health checks, else after `health_timeout_s`);
        `s3` fetches the inference logs the model APIs ship to `config.bucket`; `ecr` checks
        the bundle's image was pushed before anything is created (None: not checked)."""
        self.config, self.ecs, self.discovery, self.runs_root = config, ecs, discovery, runs_root
        self.s3, self.ecr, self.health_timeout_s = s3, ecr, health_timeout_s
        self.inventory = Inventory(config, ecs, discovery, sleep)
        self.waiter = waiter or self._wait_stable_and_healthy
        self.sleep = sleep

    def describe(self) -> str:
        return f"ECS Fargate services in cluster {self.config.cluster} ({self.config.region})"

    def inference_log_dir(self, env: Environment) -> Path:
        """The run's local copy of what `env`'s model API shipped so far, fetched first."""
        release_id, role = checked_id(env.release_id, "release id"), checked_id(env.role, "role")
        local = self.runs_root / release_id / "inference" / role
        local.mkdir(parents=True, exist_ok=True)
        if self.s3 is not None and self.config.bucket:
            where = environment_logs(
                self.config.bucket, self.config.inference_prefix, env.release_id, env.role
            )
            sync_inference_logs(self.s3, where, local)
        return local

    def image_uri(self, bundle: Bundle) -> str:
        return self.config.image_uri(bundle.short_digest)

    def provision(
        self,
        release_id: str,
        role: str,
        bundle: Bundle,
        expires_at: datetime,
        dns_name: str | None = None,
    ) -> Environment:
        """Run the bundle's image as a one-task service; safe to repeat (returns the live one).
        `dns_name`: its Cloud Map name, when not `<role>-<release>` (a bake's shadow)."""
        found = [e for e in self.inventory.found(release_id) if e.role == role]
        if found and "service_arn" in found[0].handle:
            return found[0]
        self._require_image(release_id, role, bundle)
        for leftover in found:  # of an attempt that died half-way
            self.inventory.remove(leftover)
        tags = environment_tags(
            release_id, role, bundle.name, bundle.digest, expires_at, self.config.creator
        )
        handle: dict = {}
        try:
            production = self.inventory.production(bundle.name)
            handle["discovery_service_id"], dns = self._create_discovery(
                dns_name or environment_names(release_id, role)[1], tags
            )
            handle["task_definition_arn"] = self._register_task_definition(
                release_id, role, bundle, tags, production and production[1]
            )
            handle["service_arn"] = self._create_service(
                release_id, role, handle, tags, production and production[0]
            )
            env = environment_from_tags(tags, dns, handle, datetime.now(UTC))
            self.waiter(env)
        except Exception as exc:
            self.teardown_role(release_id, role)
            raise EnvironmentError_(f"{role} environment for {release_id} failed: {exc}") from exc
        return env

    def teardown(self, release_id: str) -> list[Environment]:
        """Remove every resource tagged with `release_id`; a second call finds nothing."""
        found = self.inventory.found(release_id)
        for env in found:
            self.inventory.remove(env)
        self._stop_load_generators(release_id)
        return found

    def _stop_load_generators(self, release_id: str) -> None:
        """Stop the release's load-generator tasks still running: a load test stops its own,
        but not when its flow run was lost mid-test (a worker with no master waits on)."""
        cluster = self.config.cluster
        pages = self.ecs.get_paginator("list_tasks").paginate(
            cluster=cluster, startedBy=LOADGEN_STARTED_BY, desiredStatus="RUNNING"
        )
        arns = [arn for page in pages for arn in page["taskArns"]]
        for start in range(0, len(arns), 100):  # DescribeTasks takes 100 at most
            batch = arns[start : start + 100]
            described = self.ecs.describe_tasks(cluster=cluster, tasks=batch, include=["TAGS"])
            for task in described["tasks"]:
                tags = {t["key"]: t["value"] for t in task.get("tags", [])}
                if tags.get(f"{TAG_PREFIX}release-id") == release_id:
                    reason = f"fearless: release {release_id} torn down"
                    self.ecs.stop_task(cluster=cluster, task=task["taskArn"], reason=reason)

    def teardown_role(self, release_id: str, role: str) -> list[Environment]:
        found = [e for e in self.inventory.found(release_id) if e.role == role]
        for env in found:
            self.inventory.remove(env)
        return found

    def list(self) -> list[Environment]:
        return self.inventory.found(None)

    def check(self, env: Environment) -> EnvironmentDown | None:
        """Down once any task of `env`'s service has stopped (ECS may already have started a
        new one: the one that served the step is gone), with ECS's stopped reason."""
        arn = env.handle.get("service_arn")
        if arn is None:
            return None
        service = arn.rsplit("/", 1)[-1]
        cluster = self.config.cluster
        stopped = self.ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")
        if not stopped["taskArns"]:
            return None
        tasks = self.ecs.describe_tasks(cluster=cluster, tasks=stopped["taskArns"][:100])["tasks"]
        ours = [t for t in tasks if t.get("group") == f"service:{service}"]
        if not ours:
            return None
        task = ours[0]
        codes = [c["exitCode"] for c in task.get("containers", []) if c.get("exitCode") is not None]
        code = f" (exit code {codes[0]})" if codes else ""
        reason = f"stopped: {task.get('stoppedReason', 'no reason given')}{code}"
        where = f"logs: {self.config.log_group}, stream prefix {env.release_id}"
        return EnvironmentDown(role=env.role, reason=reason, log_tail=where)

    def cost(self, env: Environment, until: datetime | None = None) -> ComputeCost:
        """Compute the environment reserves from its creation until `until` (default: now)."""
        definition = self._task_definition(env)
        hours = max(((until or datetime.now(UTC)) - env.created_at).total_seconds(), 0) / 3600
        return compute_cost(
            int(definition["cpu"]) / 1024,
            int(definition["memory"]),
            hours,
            self.config.region,
            self.config.architecture,
        )

    def parity(self, env: Environment) -> list[str] | None:
        """How `env` differs from the model's production service now; None if it has none."""
        production = self.inventory.production(env.model)
        if production is None:
            return None
        if "service_arn" not in env.handle:
            raise EnvironmentError_(f"{env.role} of {env.release_id} has no ECS service")
        service = self.ecs.describe_services(
            cluster=self.config.cluster, services=[env.handle["service_arn"]]
        )["services"][0]
        return definitions.differences(
            production[1], production[0], self._task_definition(env), service
        )

    def _task_definition(self, env: Environment) -> dict:
        if "task_definition_arn" not in env.handle:
            raise EnvironmentError_(f"{env.role} of {env.release_id} has no task definition")
        return self.ecs.describe_task_definition(taskDefinition=env.handle["task_definition_arn"])[
            "taskDefinition"
        ]

    def _require_image(self, release_id: str, role: str, bundle: Bundle) -> None:
        """Fail fast: a service whose tasks cannot pull their image only fails slowly and noisily."""
        if self.ecr is None:
            return
        image, failed = self.image_uri(bundle), f"{role} environment for {release_id}"
        try:
            found = image_exists(self.ecr, self.config.image_repository, bundle.short_digest)
        except Exception as exc:
            raise EnvironmentError_(f"{failed}: cannot look up {image} in ECR: {exc}") from exc
        if not found:
            raise EnvironmentError_(
                f"{failed}: image {image} is not in ECR; build and push it before releasing: "
                f"`fearless image build <project> --push` where Docker runs, or the release "
                f"workflow's image step (set the FEARLESS_AWS_ECR_REPOSITORY secret)"
            )

    def _create_discovery(self, dns_name: str, tags: dict) -> tuple[str, str]:
        service = self.discovery.create_service(
            Name=dns_name,
            NamespaceId=self.config.namespace_id,
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
            HealthCheckCustomConfig={"FailureThreshold": 1},
            Tags=tag_list(tags, "Key", "Value"),
        )["Service"]
        return service["Id"], f"{dns_name}.{self.inventory.namespace_name()}"

    def _register_task_definition(
        self, release_id: str, role: str, bundle: Bundle, tags: dict, production: dict | None
    ) -> str:
        family, _ = environment_names(release_id, role)
        resources = bundle.spec.resources
        size = definitions.task_size(resources.cpu, resources.memory_mb, production)
        image = self.image_uri(bundle)
        if production is None:
            args = definitions.fresh_definition(
                self.config, family, image, bundle.digest, size, release_id
            )
        else:
            args = definitions.derived_definition(
                production, family, image, bundle.digest, size, release_id
            )
        if self.config.bucket:
            where = environment_logs(
                self.config.bucket, self.config.inference_prefix, release_id, role
            )
            args = definitions.with_inference_log(args, where.url, release_id, self.config.region)
        return self.ecs.register_task_definition(**definitions.with_tags(args, tags))[
            "taskDefinition"
        ]["taskDefinitionArn"]

    def _create_service(
        self, release_id: str, role: str, handle: dict, tags: dict, production: dict | None
    ) -> str:
        name, _ = environment_names(release_id, role)
        registry = self.discovery.get_service(Id=handle["discovery_service_id"])["Service"]
        network = (production or {}).get("networkConfiguration") or {
            "awsvpcConfiguration": {
                "subnets": self.config.subnets,
                "securityGroups": self.config.security_groups,
                "assignPublicIp": "DISABLED",
            }
        }
        platform = {"platformVersion": (production or {}).get("platformVersion")}
        return self.ecs.create_service(
            cluster=self.config.cluster,
            serviceName=name,
            taskDefinition=handle["task_definition_arn"],
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration=network,
            serviceRegistries=[{"registryArn": registry["Arn"]}],
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": False},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
            tags=tag_list(tags),
            propagateTags="SERVICE",
            enableECSManagedTags=True,
            **{k: v for k, v in platform.items() if v},
        )["service"]["serviceArn"]

    def _wait_stable_and_healthy(self, env: Environment) -> None:
        arn, timeout = env.handle["service_arn"], self.health_timeout_s
        wait_stable_and_healthy(self.ecs, self.config.cluster, arn, timeout, self.sleep)
