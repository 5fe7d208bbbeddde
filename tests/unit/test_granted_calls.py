"""The granted-calls check (tests/integration/aws_calls.py, conftest's only_granted_aws_calls):
how a call becomes IAM actions of a role, and that a role missing one action fails it."""

from __future__ import annotations

import pytest

from tests.integration.aws_calls import actions_of, execution_actions, passed_roles
from tests.unit.iam_policies import role_statements, ungranted


def without(action: str):
    """role_statements with `action` taken out of every statement."""

    def statements_of(role: str) -> list[dict]:
        found = role_statements(role)
        for st in found:
            listed = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            st["Action"] = [a for a in listed if a.lower() != action.lower()]
        return found

    return statements_of


@pytest.mark.parametrize(
    ("role", "action"),
    [
        ("worker", "ecs:RunTask"),
        ("worker", "ecs:TagResource"),
        ("execution", "logs:CreateLogGroup"),
        ("ci", "ecr:DescribeImages"),
        ("model-api", "s3:PutObject"),
    ],
)
def test_a_role_missing_one_action_fails_the_check_naming_it(role, action):
    calls = [(role, action), ("worker", "ecs:DescribeServices")]
    assert ungranted(calls) == set()
    assert ungranted(calls, without(action)) == {(role, action)}


def test_a_call_becomes_the_iam_actions_it_needs():
    assert actions_of("s3", "ListObjectsV2", {}) == ["s3:ListBucket"]
    assert actions_of("s3", "PutObject", {"Tagging": "a=b"}) == [
        "s3:PutObject",
        "s3:PutObjectTagging",
    ]
    assert actions_of("servicediscovery", "GetNamespace", {}) == ["servicediscovery:GetNamespace"]
    assert actions_of("sts", "GetCallerIdentity", {}) == []
    params = {"taskRoleArn": "arn:task", "executionRoleArn": "arn:exec"}
    assert passed_roles("RegisterTaskDefinition", params) == ["arn:task", "arn:exec"]
    assert passed_roles("RunTask", {"overrides": {"taskRoleArn": "arn:task"}}) == ["arn:task"]


def test_a_task_definition_is_what_ecs_does_as_the_execution_role():
    """prefect-aws's flow-run definition: awslogs with awslogs-create-group, and a secret."""
    container = {
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/flows:1",
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-create-group": "true"}},
        "secrets": [{"name": "PREFECT_API_AUTH_STRING", "valueFrom": "arn:secret"}],
    }
    found = execution_actions({"containerDefinitions": [container]})
    assert {"logs:CreateLogGroup", "secretsmanager:GetSecretValue", "ecr:BatchGetImage"} <= set(
        found
    )
    assert ungranted(("execution", a) for a in found) == set()
    assert ungranted([("execution", "logs:CreateLogGroup")], without("logs:CreateLogGroup"))
