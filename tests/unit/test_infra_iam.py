"""Every IAM policy in infra/ passes parliament, which knows each action's condition keys and
resource types: a condition key an action does not have never matches, and a resource of the
wrong type is never granted, so either silently denies on a real account."""

from __future__ import annotations

import warnings

import pytest

from fearless.environments.ecs.config import SHADOW_ROLE, environment_names, shadow_dns_name
from tests.unit.iam_policies import (
    ACCOUNT,
    NAME,
    REGION,
    RESOURCE_POLICIES,
    ROLE_DOCUMENTS,
    SAMPLE,
    as_json,
    documents,
    grants,
    role_statements,
)
from tests.unit.test_infra import INFRA, one, parsed, resource

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # parliament imports pkg_resources
    from parliament import analyze_policy_string

DOCUMENTS = documents()
# ListTasks names a container instance, which Fargate has none of: AWS's own example lists a
# cluster's tasks with Resource "*" under ecs:cluster, as the worker policy does.
RESOURCE_STAR_OK = {"ecs:ListTasks"}
# A trust policy names who may assume a role, and no resource: parliament reads identity policies.
TRUST = {k for k, doc in DOCUMENTS.items() if all("Resource" not in s for s in doc["Statement"])}
# Who assumes a role: ECS tasks, but for the Enhanced Monitoring role of Prefect's database.
ASSUMERS = {("prefect_server", "monitoring_assume"): "monitoring.rds.amazonaws.com"}


@pytest.mark.parametrize("key", sorted(set(DOCUMENTS) - TRUST), ids=lambda k: f"{k[0]}/{k[1]}")
def test_every_policy_passes_the_iam_linter(key):
    policy = analyze_policy_string(as_json(DOCUMENTS[key]), include_community_auditors=False)
    findings = [(f.issue, f.detail) for f in policy.findings]
    if key in RESOURCE_POLICIES:  # a key or queue policy's "*" is the key or queue itself
        findings = [f for f in findings if f[0] != "RESOURCE_STAR"]
    findings = [f for f in findings if f[0] != "RESOURCE_STAR" or set(f[1]) - RESOURCE_STAR_OK]
    assert not findings, f"{key}: {findings}"


@pytest.mark.parametrize("key", sorted(TRUST), ids=lambda k: f"{k[0]}/{k[1]}")
def test_trust_policies_let_only_ecs_tasks_assume_the_role(key):
    for st in DOCUMENTS[key]["Statement"]:
        assert st["Action"] == ["sts:AssumeRole"]
        assert st["Principal"] == {"Service": [ASSUMERS.get(key, "ecs-tasks.amazonaws.com")]}


def test_the_linter_catches_a_condition_key_the_action_does_not_have():
    """The defect of issue 22: ecs:TagResource conditioned on ecs:cluster never matches."""
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["ecs:RunTask", "ecs:TagResource"],
                "Resource": "*",
                "Condition": {"ArnEquals": {"ecs:cluster": "arn:aws:ecs:us-east-1:1:cluster/x"}},
            }
        ],
    }
    issues = {f.issue for f in analyze_policy_string(as_json(bad)).findings}
    assert "UNKNOWN_CONDITION_FOR_ACTION" in issues


def test_every_role_document_exists():
    for role, keys in ROLE_DOCUMENTS.items():
        assert all(k in DOCUMENTS for k in keys), role


@pytest.mark.parametrize(
    ("role", "action"),
    [
        # tagged RunTask/CreateService/RegisterTaskDefinition need TagResource without a
        # condition it cannot meet
        ("worker", "ecs:TagResource"),
        ("worker", "ecs:ListTagsForResource"),
        # prefect-aws sets awslogs-create-group for flow-run tasks
        ("execution", "logs:CreateLogGroup"),
        # `fearless image build --push` looks the image up before pushing
        ("ci", "ecr:DescribeImages"),
        ("ci", "ecr:DescribeRepositories"),
        ("ci", "ecr:GetAuthorizationToken"),
    ],
)
def test_each_role_holds_what_issue_22_found_missing(role, action):
    assert grants(role_statements(role), action), f"{role} lacks {action}"


def test_cloudwatch_logs_may_use_the_key_as_its_regional_principal():
    """CloudWatch Logs calls KMS as logs.<region>.amazonaws.com, never logs.amazonaws.com."""
    key = DOCUMENTS[("registry", "key")]["Statement"]
    services = [s for st in key for s in st.get("Principal", {}).get("Service", [])]
    assert "logs.us-east-1.amazonaws.com" in services
    assert "logs.amazonaws.com" not in services


def test_the_auth_secret_policy_waits_for_the_execution_role_and_the_worker_for_it():
    """A policy on a role named by a literal races the role's creation on the first apply."""
    modules = {
        n: b for m in parsed(INFRA / "examples" / "complete")["module"] for n, b in m.items()
    }
    assert one(modules["prefect_worker"]["execution_role_name"]) == (
        "${module.ecs.execution_role_name}"
    )
    worker = INFRA / "modules" / "prefect_worker"
    service = resource(worker, "aws_ecs_service")
    assert "${aws_iam_role_policy.read_auth_secret}" in one(service["depends_on"])


def test_the_worker_may_run_and_remove_a_bakes_shadow_under_its_own_names():
    """The shadow is a test environment named `fearless-<release>-shadow` in ECS and
    `<model>-shadow` in Cloud Map (fearless.production.ecs); no statement may name-filter it out.
    A Cloud Map service's ARN carries its id, not its name, so only the namespace confines it."""
    service, _ = environment_names("rel-1", SHADOW_ROLE)
    assert shadow_dns_name("credit") == "credit-shadow"  # not `<role>-<release>`: any name passes
    ecs = f"arn:aws:ecs:{REGION}:{ACCOUNT}"
    calls = {
        f"{ecs}:service/{NAME}/{service}": [
            "ecs:CreateService",
            "ecs:UpdateService",
            "ecs:DeleteService",
            "ecs:DescribeServices",
            "ecs:TagResource",
        ],
        f"{ecs}:task-definition/{service}:1": [
            "ecs:RegisterTaskDefinition",
            "ecs:DeleteTaskDefinitions",
            "ecs:TagResource",
        ],
        SAMPLE["var.namespace_arn"]: ["servicediscovery:CreateService"],
        f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:service/srv-0123456789abcdef": [
            "servicediscovery:CreateService",
            "servicediscovery:GetService",
            "servicediscovery:DeregisterInstance",
            "servicediscovery:DeleteService",
        ],
        SAMPLE["var.execution_role_arn"]: ["iam:PassRole"],
        SAMPLE["var.task_role_arn"]: ["iam:PassRole"],
    }
    worker = role_statements("worker")
    missing = [(a, r) for r, actions in calls.items() for a in actions if not grants(worker, a, r)]
    assert not missing, missing
