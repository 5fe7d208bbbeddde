"""Finding what exists on AWS by its tags and names, and removing a test environment's part.

Nothing is recorded locally: a run that crashed half-way, on any machine, is found again by
its `fearless:*` tags and cleaned up by the janitor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from fearless.aws import TAG_PREFIX, tag_dict
from fearless.environments import Environment
from fearless.environments.ecs.config import (
    NAME_PREFIX,
    SHADOW_ROLE,
    EcsConfig,
    environment_from_tags,
    environment_names,
    production_service_name,
)


class Inventory:
    """What exists, found by tags. For one release, only its own resources are described and
    their tags read (found by their names first), so a teardown costs the same whether the
    account holds one test environment or a hundred."""

    def __init__(
        self, config: EcsConfig, ecs, discovery, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.config, self.ecs, self.discovery, self.sleep = config, ecs, discovery, sleep

    def production(self, model: str) -> tuple[dict, dict] | None:
        """(service, task definition) of the model's production service; None if it has none."""
        try:
            services = self.ecs.describe_services(
                cluster=self.config.cluster,
                services=[production_service_name(model)],
                include=["TAGS"],
            )["services"]
        except self.ecs.exceptions.ClusterNotFoundException:
            return None
        live = [s for s in services if s["status"] == "ACTIVE"]
        if not live:
            return None
        definition = self.ecs.describe_task_definition(taskDefinition=live[0]["taskDefinition"])
        return live[0], definition["taskDefinition"]

    def found(self, release_id: str | None) -> list[Environment]:
        """Every environment whose resources carry our tags (of one release, or all)."""
        parts: dict[tuple[str, str], dict] = {}

        def add(tags: dict, key: str, value: str, created: datetime | None = None) -> None:
            rid, role = tags.get(f"{TAG_PREFIX}release-id"), tags.get(f"{TAG_PREFIX}role")
            if rid is None or role is None or release_id not in (None, rid):
                return
            part = parts.setdefault((rid, role), {"tags": tags, "handle": {}, "created": []})
            part["handle"][key] = value
            part["created"] += [created] if created else []

        for service in self._discovery_services(release_id):
            arn = service["Arn"]
            tags = tag_dict(self.discovery.list_tags_for_resource(ResourceARN=arn)["Tags"])
            add(tags, "discovery_service_id", service["Id"], service.get("CreateDate"))
            add(tags, "dns_name", service["Name"])
        prefix = NAME_PREFIX if release_id is None else f"{NAME_PREFIX}{release_id}-"
        for arn in self.task_definition_arns(prefix):
            tags = tag_dict(self.ecs.list_tags_for_resource(resourceArn=arn)["tags"])
            add(tags, "task_definition_arn", arn)
        for service in self._ecs_services(release_id):
            tags = tag_dict(service.get("tags"))
            add(tags, "service_arn", service["serviceArn"], service.get("createdAt"))
        namespace = None
        envs = []
        for _, part in sorted(parts.items()):
            dns = part["handle"].pop("dns_name", None)
            if dns:
                namespace = namespace or self.namespace_name()
                dns = f"{dns}.{namespace}"
            created = min(part["created"], default=datetime.now(UTC))
            envs.append(environment_from_tags(part["tags"], dns, part["handle"], created))
        return envs

    def namespace_name(self) -> str:
        return self.discovery.get_namespace(Id=self.config.namespace_id)["Namespace"]["Name"]

    def task_definition_arns(self, prefix: str = NAME_PREFIX) -> list[str]:
        """Every revision of the task definition families named `prefix...`."""
        families = self.ecs.get_paginator("list_task_definition_families").paginate(
            familyPrefix=prefix, status="ALL"
        )
        arns = []
        for family in (f for page in families for f in page["families"]):
            for status in ("ACTIVE", "INACTIVE"):
                pages = self.ecs.get_paginator("list_task_definitions").paginate(
                    familyPrefix=family, status=status
                )
                arns += [a for page in pages for a in page["taskDefinitionArns"]]
        return arns

    def remove(self, env: Environment) -> None:
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

    def _discovery_services(self, release_id: str | None) -> list[dict]:
        """The namespace's services (of one release: by their name, `<role>-<release>`, or
        `<model>-shadow`, a bake's shadow, whose tags then say whose it is)."""
        pages = self.discovery.get_paginator("list_services").paginate(
            Filters=[{"Name": "NAMESPACE_ID", "Values": [self.config.namespace_id]}]
        )
        services = [s for page in pages for s in page["Services"]]
        if release_id is None:
            return services
        ours = (f"-{release_id}", f"-{SHADOW_ROLE}")
        return [s for s in services if s["Name"].endswith(ours)]

    def _ecs_services(self, release_id: str | None) -> list[dict]:
        """The cluster's active services (of one release: by their name, before describing)."""
        pages = self.ecs.get_paginator("list_services").paginate(cluster=self.config.cluster)
        try:
            arns = [a for page in pages for a in page["serviceArns"]]
        except self.ecs.exceptions.ClusterNotFoundException:
            return []
        if release_id is not None:
            named = f"/{NAME_PREFIX}{release_id}-"
            arns = [a for a in arns if named in a]
        services = []
        for i in range(0, len(arns), 10):
            services += self.ecs.describe_services(
                cluster=self.config.cluster, services=arns[i : i + 10], include=["TAGS"]
            )["services"]
        return [s for s in services if s["status"] == "ACTIVE"]

    def _delete_task_definitions(self, env: Environment) -> None:
        family, _ = environment_names(env.release_id, env.role)
        arns = [
            a
            for a in self.task_definition_arns(family)
            if a.split("/")[-1].startswith(family + ":")
        ]
        for arn in arns:
            definition = self.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            if definition["status"] == "ACTIVE":
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
