"""Static checks of infra/ (terraform cannot run here): module layout, tags, encryption, IAM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

INFRA = Path(__file__).resolve().parents[2] / "infra"
MODULES = sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir())
ROOTS = [*MODULES, INFRA / "examples" / "complete"]
UNTAGGABLE = {
    "aws_kms_alias",
    "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_logging",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_ecr_lifecycle_policy",
    "aws_ecs_cluster_capacity_providers",
    "aws_iam_role_policy",
    "aws_iam_role_policy_attachment",
    "aws_cloudwatch_event_target",
    "aws_sqs_queue_policy",
    "aws_appautoscaling_policy",
    "aws_efs_mount_target",
    "aws_efs_file_system_policy",
}
# statements whose "*" resource is unavoidable (no resource-level permission) or conditioned
WILDCARD_RESOURCE_OK = {
    "AccountAdministers",
    "ServicesEncrypt",
    "LogsEncrypt",
    "EcrLogin",
    "ListInCluster",
    "TaskDefinitions",
    "ServiceDiscoveryList",
    "DescribeNetwork",
}


def one(value):
    """python-hcl2 wraps attribute values in one-element lists; take the value out."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def parsed(folder: Path) -> dict[str, list]:
    merged: dict[str, list] = {}
    for tf in sorted(folder.glob("*.tf")):
        with tf.open() as f:
            for block, items in hcl2.load(f).items():
                merged.setdefault(block, []).extend(items)
    return merged


def blocks(folder: Path, kind: str):
    """(type, name, body) of every `resource` or `data` block in a module."""
    for item in parsed(folder).get(kind, []):
        for type_, named in item.items():
            for name, body in named.items():
                yield type_, name, body


def resource(folder: Path, type_: str) -> dict:
    return next(body for t, _, body in blocks(folder, "resource") if t == type_)


@pytest.mark.parametrize("folder", ROOTS, ids=lambda p: p.name)
def test_standard_layout_and_every_variable_and_output_described(folder):
    assert {p.name for p in folder.glob("*.tf")} >= {
        "main.tf",
        "variables.tf",
        "outputs.tf",
        "versions.tf",
    }
    tf = parsed(folder)
    for item in tf.get("variable", []):
        for name, body in item.items():
            assert one(body.get("description")), f"{folder.name}: variable {name} undescribed"
            assert one(body.get("type")), f"{folder.name}: variable {name} untyped"
    for item in tf.get("output", []):
        for name, body in item.items():
            assert one(body.get("description")), f"{folder.name}: output {name} undescribed"


@pytest.mark.parametrize("folder", MODULES, ids=lambda p: p.name)
def test_every_taggable_resource_is_tagged(folder):
    for type_, name, body in blocks(folder, "resource"):
        if type_ not in UNTAGGABLE:
            tags = one(body.get("tags"))
            assert tags == "${var.tags}" or tags.startswith("${merge(var.tags,"), f"{type_}.{name}"


def test_the_example_tags_everything_with_project_and_owner_by_default():
    main = (INFRA / "examples" / "complete" / "main.tf").read_text()
    assert "default_tags" in main
    locals_ = one(parsed(INFRA / "examples" / "complete")["locals"])
    assert {"project", "owner"} <= set(one(locals_["tags"]))


def test_bucket_images_logs_and_queue_are_encrypted_and_the_bucket_private():
    registry = INFRA / "modules" / "registry"
    sse = one(resource(registry, "aws_s3_bucket_server_side_encryption_configuration")["rule"])
    default = one(sse["apply_server_side_encryption_by_default"])
    assert one(default["sse_algorithm"]) == "aws:kms"
    versioning = one(resource(registry, "aws_s3_bucket_versioning")["versioning_configuration"])
    assert one(versioning["status"]) == "Enabled"
    block = resource(registry, "aws_s3_bucket_public_access_block")
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls"):
        assert one(block[flag]) is True
    assert one(block["restrict_public_buckets"]) is True
    ecr = resource(registry, "aws_ecr_repository")
    assert one(one(ecr["encryption_configuration"])["encryption_type"]) == "KMS"
    assert one(ecr["image_tag_mutability"]) == "IMMUTABLE"
    assert one(resource(INFRA / "modules" / "ecs", "aws_cloudwatch_log_group")["kms_key_id"])
    queue = resource(INFRA / "modules" / "prefect_worker", "aws_sqs_queue")
    assert one(queue["kms_master_key_id"])


def test_the_worker_notices_crashed_tasks_through_eventbridge_and_sqs():
    worker = INFRA / "modules" / "prefect_worker"
    rule = resource(worker, "aws_cloudwatch_event_rule")
    assert "ECS Task State Change" in one(rule["event_pattern"])
    definition = one(resource(worker, "aws_ecs_task_definition")["container_definitions"])
    assert "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME" in definition


@pytest.mark.parametrize("folder", MODULES, ids=lambda p: p.name)
def test_no_wildcard_actions_and_wildcard_resources_only_where_iam_allows_nothing_finer(folder):
    for type_, name, body in blocks(folder, "data"):
        if type_ != "aws_iam_policy_document":
            continue
        for statement in body.get("statement", []):
            sid = one(statement.get("sid"))
            actions = one(statement["actions"])
            wildcard = [a for a in actions if a == "*" or a.endswith(":*")]
            assert not wildcard or sid == "AccountAdministers", f"{name}/{sid}: {wildcard}"
            resources = one(statement.get("resources", []))
            if "*" in ([resources] if isinstance(resources, str) else resources):
                assert sid in WILDCARD_RESOURCE_OK, f"{name}/{sid} has resource '*'"


def test_checkov_finds_no_failed_checks():
    checkov = Path(sys.executable).parent / "checkov"
    out = subprocess.run(
        [str(checkov), "-d", str(INFRA), "--quiet", "--compact", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,  # exits 1 when a check fails: the JSON says which
    )
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    assert not failed, [(c["check_id"], c["resource"]) for c in failed]
    skipped = [c for r in reports for c in r.get("results", {}).get("skipped_checks", [])]
    assert all(c["check_result"].get("suppress_comment") for c in skipped)
