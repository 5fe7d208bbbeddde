"""Test environments as Fargate services on ECS, found again by their tags alone.

Each environment is three resources, created in this order and removed in reverse: a Cloud Map
service (the DNS name the load generator calls, `<role>-<release>.<namespace>:8080`), a task
definition for the bundle's image, and an ECS service running one task of it. Nothing is
recorded locally: `list()` and `teardown()` read the `fearless:*` tags, so a run that crashed
half-way, on any machine, is still cleaned up by the janitor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fearless.aws import TAG_PREFIX, environment_tags, tag_dict, tag_list
from fearless.aws.prices import ComputeCost, compute_cost, fargate_size
from fearless.bundle import Bundle
from fearless.environments import Environment, EnvironmentError_

PORT = 8080
CONTAINER = "model-api"
NAME_PREFIX = "fearless-"
Waiter = Callable[[Environment], None]


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


class EcsEnvironments:
    def __init__(
        self,
        config: EcsConfig,
        ecs,
        discovery,
        runs_root: Path,
        waiter: Waiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`waiter` blocks until an environment answers (default: ECS stable + task healthy)."""
        self.config, self.ecs, self.discovery, self.runs_root = config, ecs, discovery, runs_root
        self.waiter = waiter or self._wait_stable_and_healthy
        self.sleep = sleep

    def describe(self) -> str:
        return f"ECS Fargate services in cluster {self.config.cluster} ({self.config.region})"

    def inference_log_dir(self, env: Environment) -> Path:
        return self.runs_root / env.release_id / "inference" / env.role

    def image_uri(self, bundle: Bundle) -> str:
        return f"{self.config.image_repository}:{bundle.short_digest}"

    def provision(
        self, release_id: str, role: str, bundle: Bundle, expires_at: datetime
    ) -> Environment:
        """Run the bundle's image as a one-task service; safe to repeat (returns the live one)."""
        found = [e for e in self._found(release_id) if e.role == role]
        if found and "service_arn" in found[0].handle:
            return found[0]
        for leftover in found:  # of an attempt that died half-way
            self._remove(leftover)
        tags = environment_tags(
            release_id, role, bundle.name, bundle.digest, expires_at, self.config.creator
        )
        handle: dict = {}
        try:
            handle["discovery_service_id"], dns = self._create_discovery(release_id, role, tags)
            handle["task_definition_arn"] = self._register_task_definition(
                release_id, role, bundle, tags
            )
            handle["service_arn"] = self._create_service(release_id, role, handle, tags)
            env = self._environment(tags, dns, handle, datetime.now(UTC))
            self.waiter(env)
        except Exception as exc:
            self.teardown_role(release_id, role)
            raise EnvironmentError_(f"{role} environment for {release_id} failed: {exc}") from exc
        return env

    def teardown(self, release_id: str) -> list[Environment]:
        """Remove every resource tagged with `release_id`; a second call finds nothing."""
        found = self._found(release_id)
        for env in found:
            self._remove(env)
        return found

    def teardown_role(self, release_id: str, role: str) -> list[Environment]:
        found = [e for e in self._found(release_id) if e.role == role]
        for env in found:
            self._remove(env)
        return found

    def list(self) -> list[Environment]:
        return self._found(None)

    def cost(self, env: Environment, until: datetime | None = None) -> ComputeCost:
        """Compute the environment reserves from its creation until `until` (default: now)."""
        definition = self.ecs.describe_task_definition(
            taskDefinition=env.handle["task_definition_arn"]
        )["taskDefinition"]
        hours = max(((until or datetime.now(UTC)) - env.created_at).total_seconds(), 0) / 3600
        return compute_cost(
            int(definition["cpu"]) / 1024,
            int(definition["memory"]),
            hours,
            self.config.region,
            self.config.architecture,
        )

    def _names(self, release_id: str, role: str) -> tuple[str, str]:
        return f"{NAME_PREFIX}{release_id}-{role}", f"{role}-{release_id}"

    def _create_discovery(self, release_id: str, role: str, tags: dict) -> tuple[str, str]:
        _, dns_name = self._names(release_id, role)
        service = self.discovery.create_service(
            Name=dns_name,
            NamespaceId=self.config.namespace_id,
            DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
            HealthCheckCustomConfig={"FailureThreshold": 1},
            Tags=tag_list(tags, "Key", "Value"),
        )["Service"]
        return service["Id"], f"{dns_name}.{self._namespace_name()}"

    def _register_task_definition(
        self, release_id: str, role: str, bundle: Bundle, tags: dict
    ) -> str:
        family, _ = self._names(release_id, role)
        size = fargate_size(bundle.spec.resources.cpu, bundle.spec.resources.memory_mb)
        ready = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}/ready')"
        container = {
            "name": CONTAINER,
            "image": self.image_uri(bundle),
            "essential": True,
            "portMappings": [{"containerPort": PORT, "protocol": "tcp"}],
            "environment": [{"name": "FEARLESS_BUNDLE_DIGEST", "value": bundle.digest}],
            "healthCheck": {
                "command": ["CMD", "python", "-c", ready],
                "interval": 10,
                "timeout": 3,
                "retries": 3,
                "startPeriod": 30,
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.config.log_group,
                    "awslogs-region": self.config.region,
                    "awslogs-stream-prefix": release_id,
                },
            },
        }
        return self.ecs.register_task_definition(
            family=family,
            taskRoleArn=self.config.task_role_arn,
            executionRoleArn=self.config.execution_role_arn,
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu=str(size.cpu_units),
            memory=str(size.memory_mib),
            runtimePlatform={
                "cpuArchitecture": self.config.architecture.upper(),
                "operatingSystemFamily": "LINUX",
            },
            containerDefinitions=[container],
            tags=tag_list(tags),
        )["taskDefinition"]["taskDefinitionArn"]

    def _create_service(self, release_id: str, role: str, handle: dict, tags: dict) -> str:
        name, _ = self._names(release_id, role)
        registry_arn = self.discovery.get_service(Id=handle["discovery_service_id"])["Service"]
        return self.ecs.create_service(
            cluster=self.config.cluster,
            serviceName=name,
            taskDefinition=handle["task_definition_arn"],
            desiredCount=1,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": self.config.subnets,
                    "securityGroups": self.config.security_groups,
                    "assignPublicIp": "DISABLED",
                }
            },
            serviceRegistries=[{"registryArn": registry_arn["Arn"]}],
            deploymentConfiguration={
                "deploymentCircuitBreaker": {"enable": True, "rollback": False},
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
            },
            tags=tag_list(tags),
            propagateTags="SERVICE",
            enableECSManagedTags=True,
        )["service"]["serviceArn"]

    def _environment(
        self, tags: dict, dns: str | None, handle: dict, created_at: datetime
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

    def _found(self, release_id: str | None) -> list[Environment]:
        """Every environment whose resources carry our tags (of one release, or all)."""
        parts: dict[tuple[str, str], dict] = {}

        def add(tags: dict, key: str, value: str, created: datetime | None = None) -> None:
            rid, role = tags.get(f"{TAG_PREFIX}release-id"), tags.get(f"{TAG_PREFIX}role")
            if rid is None or role is None or release_id not in (None, rid):
                return
            part = parts.setdefault((rid, role), {"tags": tags, "handle": {}, "created": []})
            part["handle"][key] = value
            part["created"] += [created] if created else []

        for service in self._discovery_services():
            arn = service["Arn"]
            tags = tag_dict(self.discovery.list_tags_for_resource(ResourceARN=arn)["Tags"])
            add(tags, "discovery_service_id", service["Id"], service.get("CreateDate"))
            add(tags, "dns_name", service["Name"])
        for arn in self._task_definition_arns():
            add(self._ecs_tags(arn), "task_definition_arn", arn)
        for service in self._ecs_services():
            tags = tag_dict(service.get("tags"))
            add(tags, "service_arn", service["serviceArn"], service.get("createdAt"))
        namespace = None
        envs = []
        for _, part in sorted(parts.items()):
            dns = part["handle"].pop("dns_name", None)
            if dns:
                namespace = namespace or self._namespace_name()
                dns = f"{dns}.{namespace}"
            created = min(part["created"], default=datetime.now(UTC))
            envs.append(self._environment(part["tags"], dns, part["handle"], created))
        return envs

    def _namespace_name(self) -> str:
        return self.discovery.get_namespace(Id=self.config.namespace_id)["Namespace"]["Name"]

    def _ecs_tags(self, arn: str) -> dict:
        return tag_dict(self.ecs.list_tags_for_resource(resourceArn=arn)["tags"])

    def _discovery_services(self) -> list[dict]:
        pages = self.discovery.get_paginator("list_services").paginate(
            Filters=[{"Name": "NAMESPACE_ID", "Values": [self.config.namespace_id]}]
        )
        return [s for page in pages for s in page["Services"]]

    def _task_definition_arns(self) -> list[str]:
        families = self.ecs.get_paginator("list_task_definition_families").paginate(
            familyPrefix=NAME_PREFIX, status="ALL"
        )
        arns = []
        for family in (f for page in families for f in page["families"]):
            for status in ("ACTIVE", "INACTIVE"):
                pages = self.ecs.get_paginator("list_task_definitions").paginate(
                    familyPrefix=family, status=status
                )
                arns += [a for page in pages for a in page["taskDefinitionArns"]]
        return arns

    def _ecs_services(self) -> list[dict]:
        pages = self.ecs.get_paginator("list_services").paginate(cluster=self.config.cluster)
        try:
            arns = [a for page in pages for a in page["serviceArns"]]
        except self.ecs.exceptions.ClusterNotFoundException:
            return []
        services = []
        for i in range(0, len(arns), 10):
            services += self.ecs.describe_services(
                cluster=self.config.cluster, services=arns[i : i + 10], include=["TAGS"]
            )["services"]
        return [s for s in services if s["status"] == "ACTIVE"]

    def _remove(self, env: Environment) -> None:
        """Delete one environment's resources in reverse order of creation."""
        handle = env.handle
        if "service_arn" in handle:
            self.ecs.delete_service(
                cluster=self.config.cluster, service=handle["service_arn"], force=True
            )
        if "task_definition_arn" in handle:
            self._delete_task_definitions(env)
        if "discovery_service_id" in handle:
            self._delete_discovery(handle["discovery_service_id"])

    def _delete_task_definitions(self, env: Environment) -> None:
        family, _ = self._names(env.release_id, env.role)
        arns = [
            a for a in self._task_definition_arns() if a.split("/")[-1].startswith(family + ":")
        ]
        for arn in arns:
            if (
                self.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"]
                == "ACTIVE"
            ):
                self.ecs.deregister_task_definition(taskDefinition=arn)
        for i in range(0, len(arns), 10):
            self.ecs.delete_task_definitions(taskDefinitions=arns[i : i + 10])

    def _delete_discovery(self, service_id: str, attempts: int = 30) -> None:
        """Deregister what ECS left registered, then delete; ECS lets go of instances slowly."""
        for attempt in range(attempts):
            for instance in self.discovery.list_instances(ServiceId=service_id)["Instances"]:
                self.discovery.deregister_instance(ServiceId=service_id, InstanceId=instance["Id"])
            try:
                self.discovery.delete_service(Id=service_id)
                return
            except self.discovery.exceptions.ServiceNotFound:
                return
            except self.discovery.exceptions.ResourceInUse:
                if attempt == attempts - 1:
                    raise
                self.sleep(2.0)

    def _wait_stable_and_healthy(self, env: Environment, timeout_s: float = 600) -> None:
        """ECS's own `services_stable` waiter, then the container health check must pass."""
        cluster, arn = self.config.cluster, env.handle["service_arn"]
        self.ecs.get_waiter("services_stable").wait(
            cluster=cluster, services=[arn], WaiterConfig={"Delay": 6, "MaxAttempts": 100}
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            task_arns = self.ecs.list_tasks(cluster=cluster, serviceName=arn.split("/")[-1])
            tasks = self.ecs.describe_tasks(cluster=cluster, tasks=task_arns["taskArns"] or ["-"])
            if any(t.get("healthStatus") == "HEALTHY" for t in tasks["tasks"]):
                return
            self.sleep(5.0)
        raise TimeoutError(f"{env.role} of {env.release_id} never reported HEALTHY")
