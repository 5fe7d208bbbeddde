"""Every AWS operation Fearless makes during the moto tests, as the IAM actions of the role that
makes it on a real account (issue 22: granted calls).

Installed once per session (tests/integration/conftest.py): every botocore client created from
then on gets a hook on `before-parameter-build` (botocore's event before each call, with the
call's parameters as given). A call is Fearless's when Fearless (or prefect-aws's ECS
worker, which Fearless deploys) is on the stack; the outermost such frame says whose call it
is (ROLE_OF). The tests' own calls that set moto up are not recorded. What ECS does with a
task definition the backend registers (pull its image, write its logs, read its secrets) is
recorded as calls of the execution role, and handing a role to ECS as iam:PassRole.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

# The outermost Fearless frame's `module.qualname`, by prefix -> the role that runs that code.
ROLE_OF = (
    ("fearless.aws.inference_logs.InferenceLogShipper", "model-api"),
    ("fearless.aws.inference_logs.shipper_for", "model-api"),
    ("fearless.serving", "model-api"),
    ("fearless.commands.image", "ci"),  # fearless image build --push
    ("fearless.aws.ecr.ensure_repository", "ci"),
    ("fearless.aws.ecr.registry_login", "ci"),
    ("fearless.", "worker"),  # the worker and every flow run (the flow-run task role is it)
    ("prefect_aws.", "worker"),
)
# S3 operations whose IAM action has another name.
S3_ACTIONS = {
    "HeadObject": ["s3:GetObject"],
    "ListObjectsV2": ["s3:ListBucket"],
    "ListObjects": ["s3:ListBucket"],
    "HeadBucket": ["s3:ListBucket"],
    "CopyObject": ["s3:GetObject", "s3:PutObject"],
    "DeleteObjects": ["s3:DeleteObject"],
    "CreateMultipartUpload": ["s3:PutObject"],
    "UploadPart": ["s3:PutObject"],
    "CompleteMultipartUpload": ["s3:PutObject"],
}
FREE = {"sts:GetCallerIdentity"}  # needs no permission
# What ECS needs of the execution role to start a task from an image in ECR.
PULL = ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


@dataclass(frozen=True)
class Call:
    role: str
    action: str
    caller: str  # the Fearless code that made it, or what ECS does for a task definition

    def __str__(self) -> str:
        return f"{self.role} {self.action} (by {self.caller})"


def actions_of(service: str, operation: str, params: dict) -> list[str]:
    """The IAM actions a call needs (its resource-level and condition checks are not made)."""
    if service == "s3":
        found = S3_ACTIONS.get(operation, [f"s3:{operation}"])
        if operation == "PutObject" and params.get("Tagging"):
            found = [*found, "s3:PutObjectTagging"]
        return found
    action = f"{service}:{operation}"
    return [] if action in FREE else [action]


def passed_roles(operation: str, params: dict) -> list[str]:
    """Roles a call hands to ECS (each needs iam:PassRole)."""
    if operation == "RegisterTaskDefinition":
        return [params[k] for k in ("taskRoleArn", "executionRoleArn") if params.get(k)]
    if operation == "RunTask":
        overrides = params.get("overrides") or {}
        return [overrides[k] for k in ("taskRoleArn", "executionRoleArn") if overrides.get(k)]
    return []


def execution_actions(definition: dict) -> list[str]:
    """What ECS does as the execution role to start a task of `definition`."""
    found = []
    for container in definition.get("containerDefinitions", []):
        if ".dkr.ecr." in container.get("image", ""):
            found += PULL
        log = container.get("logConfiguration") or {}
        if log.get("logDriver") == "awslogs":
            found += ["logs:CreateLogStream", "logs:PutLogEvents"]
            if str((log.get("options") or {}).get("awslogs-create-group")).lower() == "true":
                found += ["logs:CreateLogGroup"]
        if container.get("secrets"):
            found += ["secretsmanager:GetSecretValue"]
    return found


def role_of(frame) -> tuple[str, str] | None:
    """(role, caller) from the outermost Fearless frame on `frame`'s stack, or None."""
    found = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(("fearless.", "prefect_aws.")):
            found = f"{module}.{frame.f_code.co_qualname}"
        frame = frame.f_back
    if found is None:
        return None
    return next(role for prefix, role in ROLE_OF if found.startswith(prefix)), found


@dataclass
class AwsCalls:
    """The calls recorded so far, oldest first."""

    calls: list[Call] = field(default_factory=list)
    checked: int = 0  # how many of them a test has checked

    def before_call(self, params, model, **_) -> None:
        who = role_of(sys._getframe(1))
        if who is None:
            return
        role, caller = who
        service, operation = model.service_model.signing_name, model.name
        for action in actions_of(service, operation, params):
            self.calls.append(Call(role, action, caller))
        for arn in passed_roles(operation, params):
            self.calls.append(Call(role, "iam:PassRole", f"{caller}, passing {arn}"))
        if operation == "RegisterTaskDefinition":
            family = params.get("family", "?")
            for action in execution_actions(params):
                self.calls.append(Call("execution", action, f"ECS, starting a task of {family}"))

    def install(self, monkeypatch) -> AwsCalls:
        """Hook every botocore client created from now on (boto3's too: it makes them so)."""
        import botocore.session

        create = botocore.session.Session.create_client
        recorder = self

        def create_client(session, *args, **kwargs):
            client = create(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build", recorder.before_call)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
        return self
