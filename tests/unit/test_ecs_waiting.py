"""When waiting for an ECS service stops: stable and healthy, or failed for a named reason."""

from __future__ import annotations

import pytest

from fearless.aws import aws_client, retry_config
from fearless.environments.ecs.waiting import is_stable, unhealthy_reason
from fearless.settings import Settings

HEALTH = "Task failed container health checks"


def service(rollout="IN_PROGRESS", running=0, deployments=1, reason=""):
    primary = {"id": "ecs-svc/1", "status": "PRIMARY", "rolloutState": rollout}
    primary["rolloutStateReason"] = reason
    old = [{"id": "ecs-svc/0", "status": "ACTIVE"}] * (deployments - 1)
    return {
        "serviceName": "fearless-credit-1-candidate",
        "desiredCount": 1,
        "runningCount": running,
        "deployments": [primary, *old],
    }


def task(reason, started_by="ecs-svc/1", group="service:fearless-credit-1-candidate"):
    return {"group": group, "startedBy": started_by, "stoppedReason": reason}


def test_stable_is_one_deployment_running_what_it_desires():
    assert is_stable(service(running=1))
    assert not is_stable(service(running=0))
    assert not is_stable(service(running=1, deployments=2))


def test_a_task_of_this_deployment_stopped_for_its_health_checks_is_unhealthy():
    assert unhealthy_reason(service(), [task(HEALTH)]) == (
        f"a task failed its health checks ({HEALTH})"
    )
    elb = "Task failed ELB health checks in (target-group arn:aws:...)"
    assert "ELB health checks" in unhealthy_reason(service(), [task(elb)])


@pytest.mark.parametrize(
    "stopped",
    [
        task(HEALTH, started_by="ecs-svc/0"),  # an earlier deployment's task
        task(HEALTH, group="service:someone-else"),
        task("Scaling activity initiated by deployment ecs-svc/1"),
    ],
    ids=["earlier-deployment", "other-service", "not-health"],
)
def test_other_stopped_tasks_are_no_reason(stopped):
    assert unhealthy_reason(service(), [stopped]) is None


def test_a_deployment_the_circuit_breaker_failed_is_unhealthy():
    failed = service(rollout="FAILED", reason="tasks failed to start")
    assert unhealthy_reason(failed, []) == "its deployment failed: tasks failed to start"


@pytest.mark.parametrize("mode", ["standard", "adaptive"])
def test_every_client_retries_as_settings_say(mode):
    settings = Settings(aws_retry_mode=mode, aws_max_attempts=7)
    s3 = aws_client(settings, "s3")
    assert s3.meta.config.retries == {"mode": mode, "total_max_attempts": 7}


def test_a_retry_mode_botocore_lacks_is_refused_by_name():
    with pytest.raises(ValueError, match="'legacy' is not one of standard, adaptive"):
        retry_config("legacy")
    with pytest.raises(ValueError, match="aws_retry_mode"):
        Settings(aws_retry_mode="legacy")
