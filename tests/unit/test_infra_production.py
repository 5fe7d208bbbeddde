"""Terraform and the ECS backend agree on the production service: its name, circuit breaker,
autoscaling, command, log shipping and the settings the example root exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from fearless.environments.ecs.config import (
    CONTAINER,
    DIGEST_VARIABLE,
    LOG_DIR,
    LOG_VARIABLE,
    PORT,
    production_service_name,
)
from fearless.environments.ecs.definitions import SERVE_COMMAND
from fearless.production.ecs import (
    CIRCUIT_BREAKER,
    URL_TAG,
    ProductionScaling,
    scaling_policy_name,
)
from fearless.settings import Settings
from tests.unit.test_infra import INFRA, blocks, one, parsed, resource


def defaults(folder: Path) -> dict:
    return {
        n: one(b.get("default")) for item in parsed(folder)["variable"] for n, b in item.items()
    }


def test_terraform_and_the_backend_agree_on_the_production_service():
    """Names, circuit breaker and target tracking: the backend re-asserts what Terraform made."""
    module = INFRA / "modules" / "production_service"
    name = one(one(parsed(module)["locals"])["service_name"])
    assert name.replace("${var.model}", "credit") == production_service_name("credit")
    service = resource(module, "aws_ecs_service")
    assert one(service["deployment_circuit_breaker"]) == {
        k: [v] for k, v in CIRCUIT_BREAKER.items()
    }
    ignored = one(one(service["lifecycle"])["ignore_changes"])
    assert {"${task_definition}", "${desired_count}"} <= set(ignored)
    assert f"'{URL_TAG}'" in one(service["tags"])
    policy = resource(module, "aws_appautoscaling_policy")
    assert one(policy["name"]).replace("${var.model}", "credit") == scaling_policy_name("credit")
    tracking = one(policy["target_tracking_scaling_policy_configuration"])
    metric = one(one(tracking["predefined_metric_specification"])["predefined_metric_type"])
    assert metric == "ECSServiceAverageCPUUtilization"
    assert one(tracking["target_value"]) == "${var.target_cpu_percent}"
    scaling, module_defaults = ProductionScaling(), defaults(module)
    for field in ("min_tasks", "max_tasks", "target_cpu_percent", "scale_in_cooldown_s"):
        assert module_defaults[field] == getattr(scaling, field), field
    assert module_defaults["scale_out_cooldown_s"] == scaling.scale_out_cooldown_s
    example = defaults(INFRA / "examples" / "complete")
    for field in ("min_tasks", "max_tasks", "target_cpu_percent"):
        assert example[f"production_{field}"] == getattr(scaling, field), field
    container = one(resource(module, "aws_ecs_task_definition")["container_definitions"])
    for expected in (f"'name': '{CONTAINER}'", f"'containerPort': {PORT}", DIGEST_VARIABLE):
        assert expected in container


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"min_tasks": 0}, "min_tasks"),
        ({"max_tasks": 1}, "max_tasks"),
        ({"target_cpu_percent": 0}, "target"),
    ],
)
def test_bad_production_scaling_is_refused_naming_the_value(values, problem):
    with pytest.raises(ValueError, match=problem):
        ProductionScaling(**values)


def statements(folder: Path, document: str) -> dict[str, dict]:
    body = next(b for t, n, b in blocks(folder, "data") if n == document)
    return {one(st["sid"]): {k: one(v) for k, v in st.items()} for st in body["statement"]}


def test_worker_looks_up_networks_and_model_api_ships_and_lists_only_its_prefix():
    found = statements(INFRA / "modules" / "prefect_worker", "worker")["DescribeNetwork"]
    assert set(found["actions"]) == {"ec2:DescribeVpcs", "ec2:DescribeSubnets"}
    found = statements(INFRA / "modules" / "ecs", "task")
    write, listing = found["WriteInferenceLogs"], found["ListInferenceLogs"]
    assert set(write["actions"]) == {"s3:PutObject", "s3:PutObjectTagging"}
    assert write["resources"] == ["${var.bucket_arn}/${var.inference_prefix}/*"]
    condition = one(listing["condition"])
    assert (listing["actions"], one(condition["variable"])) == (["s3:ListBucket"], "s3:prefix")
    assert one(condition["values"]) == ["${var.inference_prefix}/*"]
    prefix = defaults(INFRA / "modules" / "ecs")["inference_prefix"]
    assert prefix == Settings().aws_inference_prefix


def test_production_command_shipping_and_exported_settings_match_the_backend():
    module, example = INFRA / "modules" / "production_service", INFRA / "examples" / "complete"
    local = one(parsed(module)["locals"])
    assert one(local["command"]) == [*SERVE_COMMAND, "--log-dir", "${local.log_dir}"]
    assert one(local["log_dir"]) == LOG_DIR  # tests/unit/test_log_volume.py: and it is writable
    assert LOG_VARIABLE in str(one(local["shipping"]))
    container = one(resource(module, "aws_ecs_task_definition")["container_definitions"])
    assert "${local.command}" in container and "local.shipping" in container
    root = {
        f"{k}.{n}": b
        for k in ("module", "output")
        for i in parsed(example)[k]
        for n, b in i.items()
    }
    shipped = one(root["module.production_service"]["inference_log_s3"])
    assert shipped.endswith("/${var.inference_prefix}/production")
    exported = one(root["output.fearless_env"]["value"])
    names = {f"FEARLESS_{n.upper()}" for n in Settings.model_fields}
    assert set(exported) <= names, set(exported) - names  # each one a setting that exists
    needed = ("VPC_ID", "FLOW_IMAGE", "FLOW_TASK_ROLE_ARN", "INFERENCE_PREFIX")
    assert {f"FEARLESS_AWS_{n}" for n in needed} <= set(exported)
    assert exported["FEARLESS_AWS_FLOW_TASK_ROLE_ARN"] == "${module.prefect_worker.worker_role_arn}"


def test_no_ecr_lifecycle_rule_can_expire_a_tagged_bundle_image():
    """Production's current or previous image may be the oldest in the repository."""
    import json

    rules = json.loads(
        one(resource(INFRA / "modules" / "registry", "aws_ecr_lifecycle_policy")["policy"])
        .removeprefix("${jsonencode(")
        .removesuffix(")}")
        .replace("'", '"')
    )["rules"]
    assert rules and all(r["selection"]["tagStatus"] == "untagged" for r in rules)


def test_a_promotion_waits_long_enough_for_a_failed_deployment_and_its_rollback():
    """Image pull allowance of 60 s per launch; the circuit breaker needs 3 failed launches."""
    from fearless.production.ecs import PROMOTION_TIMEOUT_S

    module = INFRA / "modules" / "production_service"
    group = resource(module, "aws_lb_target_group")
    check = one(group["health_check"])
    service = resource(module, "aws_ecs_service")
    grace = int(one(service["health_check_grace_period_seconds"]))
    drain = int(one(group.get("deregistration_delay", 300)))
    container = one(resource(module, "aws_ecs_task_definition")["container_definitions"])
    assert "'startPeriod': 30" in container and "'retries': 3" in container
    container_health = 30 + 3 * 10
    failing = 60 + grace + container_health + int(one(check["unhealthy_threshold"])) * 15
    healthy = 60 + grace + int(one(check["healthy_threshold"])) * int(one(check["interval"]))
    assert PROMOTION_TIMEOUT_S >= 3 * failing + healthy + drain
