"""Blocking until an ECS service runs what it was given and its tasks pass their health check,
or failing as soon as it cannot: a task ECS stopped for failing its health checks, or a
deployment its circuit breaker failed, ends the wait at once with ECS's own reason rather than
after the whole timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 6.0


class ServiceUnhealthy(RuntimeError):
    """The service's current deployment cannot become healthy: waiting longer would not help."""


def is_stable(service: dict) -> bool:
    """What ECS's `services_stable` waiter checks: one deployment, running what it desires."""
    deployments = service.get("deployments", [])
    return len(deployments) == 1 and service.get("runningCount") == service.get("desiredCount")


def unhealthy_reason(service: dict, stopped: list[dict]) -> str | None:
    """Why the service's current (primary) deployment cannot become healthy; None while it
    still may. Only tasks that deployment started count (ECS names it in their `startedBy`),
    so an earlier deployment's failures do not fail a new one."""
    primary = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})
    if primary.get("rolloutState") == "FAILED":
        return f"its deployment failed: {primary.get('rolloutStateReason') or 'no reason given'}"
    group = f"service:{service['serviceName']}"
    for task in stopped:
        if task.get("group") != group or task.get("startedBy") != primary.get("id"):
            continue
        reason = task.get("stoppedReason") or ""
        if "health check" in reason.lower():
            return f"a task failed its health checks ({reason})"
    return None


def _tasks(ecs, cluster: str, name: str, status: str) -> list[dict]:
    arns = ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus=status)["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[:100])["tasks"]
    return [t for t in tasks if t.get("group") == f"service:{name}"]


def wait_stable_and_healthy(
    ecs,
    cluster: str,
    service_arn: str,
    timeout_s: float = 600,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once the service is stable and one of its tasks reports HEALTHY; raise
    `ServiceUnhealthy` as soon as `unhealthy_reason` names one, TimeoutError after `timeout_s`."""
    name = service_arn.split("/")[-1]
    deadline = time.monotonic() + timeout_s
    while True:
        services = ecs.describe_services(cluster=cluster, services=[service_arn])["services"]
        if not services or services[0].get("status") != "ACTIVE":
            status = services[0].get("status") if services else "missing"
            raise ServiceUnhealthy(f"{name} is {status}, not ACTIVE")
        reason = unhealthy_reason(services[0], _tasks(ecs, cluster, name, "STOPPED"))
        if reason:
            raise ServiceUnhealthy(f"{name}: {reason}")
        stable = is_stable(services[0])
        running = _tasks(ecs, cluster, name, "RUNNING") if stable else []
        if any(t.get("healthStatus") == "HEALTHY" for t in running):
            return
        if time.monotonic() >= deadline:
            what = "no task reported HEALTHY" if stable else "the service never became stable"
            raise TimeoutError(f"{name}: {what} within {timeout_s:.0f} s")
        sleep(POLL_S)
