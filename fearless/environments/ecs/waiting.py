"""Blocking until an ECS service runs what it was given and its tasks pass their health check."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def wait_stable_and_healthy(
    ecs,
    cluster: str,
    service_arn: str,
    timeout_s: float = 600,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """ECS's own `services_stable` waiter (up to `timeout_s`), then at least one task must
    report HEALTHY (within `timeout_s` more)."""
    ecs.get_waiter("services_stable").wait(
        cluster=cluster,
        services=[service_arn],
        WaiterConfig={"Delay": 6, "MaxAttempts": max(1, math.ceil(timeout_s / 6))},
    )
    deadline = time.monotonic() + timeout_s
    name = service_arn.split("/")[-1]
    while time.monotonic() < deadline:
        task_arns = ecs.list_tasks(cluster=cluster, serviceName=name)["taskArns"]
        tasks = ecs.describe_tasks(cluster=cluster, tasks=task_arns or ["-"])["tasks"]
        if any(t.get("healthStatus") == "HEALTHY" for t in tasks):
            return
        sleep(5.0)
    raise TimeoutError(f"no task of {name} reported HEALTHY within {timeout_s:.0f} s")
