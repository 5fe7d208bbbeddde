"""infra/'s IAM policy documents as the JSON AWS would receive, and which role holds which.

Every Terraform expression in a document is replaced by a sample value of the right shape
(one account, one region, the example's names), so a linter and the granted-calls check read
the policies as IAM will. An expression missing from SAMPLE fails loudly: add it there.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import re

from tests.unit.test_infra import INFRA, blocks, one, parsed

ACCOUNT, REGION, NAME = "123456789012", "us-east-1", "fearless"
LOG_GROUPS = [
    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/{NAME}/{g}"
    for g in ("environments", "production", "flow-runs", "worker", "server", "loadgen")
]
SAMPLE: dict[str, str | list[str]] = {
    "var.name": NAME,
    "var.cluster_name": NAME,
    "var.cluster_arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{NAME}",
    "var.execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{NAME}-execution",
    "var.task_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{NAME}-model-api",
    "aws_iam_role.worker.arn": f"arn:aws:iam::{ACCOUNT}:role/{NAME}-worker",
    "var.loadgen_task_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{NAME}-loadgen",
    "var.namespace_arn": f"arn:aws:servicediscovery:{REGION}:{ACCOUNT}:namespace/ns-0123456789",
    "var.bucket_arn": f"arn:aws:s3:::{NAME}-registry-0123",
    "aws_s3_bucket.this.arn": f"arn:aws:s3:::{NAME}-registry-0123",
    "var.repository_arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{NAME}-models",
    "aws_ecr_repository.this.arn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{NAME}-models",
    "aws_sqs_queue.events.arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{NAME}-ecs-events",
    "aws_cloudwatch_event_rule.task_state.arn": (
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{NAME}-ecs-task-state"
    ),
    "var.kms_key_arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0123abcd-0123-4567-89ab-0123456789ab",
    "aws_kms_key.this.arn": (
        f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0123abcd-0123-4567-89ab-0123456789ab"
    ),
    "var.prefect_auth_secret_arn": (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{NAME}/prefect-auth-AbCdEf"
    ),
    "aws_db_instance.this.master_user_secret[0].secret_arn": (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!db-0123abcd-AbCdEf"
    ),
    "aws_efs_file_system.home.arn": (
        f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-0123456789abcdef0"
    ),
    "var.inference_prefix": "inference",
    "var.registry_prefix": "registry",
    "var.s3_prefix": "loadgen",
    "data.aws_region.this.name": REGION,
    "data.aws_caller_identity.this.account_id": ACCOUNT,
    '[for g in aws_cloudwatch_log_group.this : "${g.arn}:*"]': [f"{g}:*" for g in LOG_GROUPS],
    "[for g in aws_cloudwatch_log_group.this : g.arn]": LOG_GROUPS,
}
# Which policy documents each role holds, as the modules attach them.
ROLE_DOCUMENTS = {
    # the Prefect worker and every flow run (FEARLESS_AWS_FLOW_TASK_ROLE_ARN is this role)
    "worker": [("prefect_worker", "worker")],
    # ECS itself, starting any task: pulls, logs, the Prefect auth secret
    "execution": [
        ("ecs", "execution"),
        ("prefect_worker", "read_auth_secret"),
        ("prefect_server", "read_secrets"),  # where the example runs the server
    ],
    # the model API (test environments and production)
    "model-api": [("ecs", "task")],
    # the load generator's tasks (fearless.loadtest.fleet_task: Locust master and workers)
    "loadgen": [("load_generator", "task")],
    # CI's OIDC role, which attaches the registry module's ci_push_policy_json output
    "ci": [("registry", "ci_push")],
}
# Resource policies (key and queue policies): they name principals, not roles.
RESOURCE_POLICIES = {("registry", "key"), ("prefect_worker", "queue")}
TOKEN = re.compile(r"\$\{((?:[^{}]|\{[^{}]*\})*)\}")


def render(value, table: dict | None = None):
    """`value` (a string, or lists of them) with every `${...}` replaced from `table`
    (default SAMPLE)."""
    table = SAMPLE if table is None else table
    if isinstance(value, list):
        out = []
        for item in value:
            rendered = render(item, table)
            out += rendered if isinstance(rendered, list) else [rendered]
        return out
    whole = TOKEN.fullmatch(value)
    if whole and isinstance(table.get(whole[1]), list):
        return table[whole[1]]
    return TOKEN.sub(lambda m: str(table[m[1]]), value)


def module_table(module) -> dict:
    """SAMPLE plus the module's own locals, rendered."""
    table = dict(SAMPLE)
    for item in parsed(module).get("locals", []):
        for name, value in item.items():
            try:
                table[f"local.{name}"] = render(one(value), table)
            except (KeyError, TypeError):  # not one a policy uses
                continue
    return table


def _statement(st: dict, render) -> dict:
    out: dict = {"Effect": one(st.get("effect", "Allow"))}
    if st.get("sid"):
        out["Sid"] = one(st["sid"])
    out["Action"] = render(one(st["actions"]))
    if st.get("resources"):  # a trust policy has none
        out["Resource"] = render(one(st["resources"]))
    for principals in st.get("principals", []):
        ids = render(one(principals["identifiers"]))
        out.setdefault("Principal", {})[one(principals["type"])] = ids
    for cond in st.get("condition", []):
        values = render(one(cond["values"]))
        values = values[0] if isinstance(values, list) and len(values) == 1 else values  # as TF
        out.setdefault("Condition", {}).setdefault(one(cond["test"]), {})[
            render(one(cond["variable"]))
        ] = values
    return out


def documents() -> dict[tuple[str, str], dict]:
    """(module, document name) -> the policy JSON of every aws_iam_policy_document."""
    found = {}
    for module in sorted(p for p in (INFRA / "modules").iterdir() if p.is_dir()):
        table = module_table(module)

        def in_module(value, table=table):
            return render(value, table)

        for type_, name, body in blocks(module, "data"):
            if type_ == "aws_iam_policy_document":
                statements = [_statement(st, in_module) for st in body.get("statement", [])]
                found[(module.name, name)] = {"Version": "2012-10-17", "Statement": statements}
    return found


@functools.cache
def _role_statements(role: str) -> list[dict]:
    docs = documents()
    return [st for key in ROLE_DOCUMENTS[role] for st in docs[key]["Statement"]]


def role_statements(role: str) -> list[dict]:
    """The statements of every policy `role` holds (a copy: change it freely)."""
    return copy.deepcopy(_role_statements(role))


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def grants(statements: list[dict], action: str, resource: str = "*") -> bool:
    """Whether an Allow statement names `action` on a resource pattern matching `resource`
    (`*`: any resource). Conditions are the linter's concern, not this one's."""
    for st in statements:
        if st["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(st["Action"])):
            continue
        if resource == "*" or any(
            fnmatch.fnmatchcase(resource, r) for r in _listed(st["Resource"])
        ):
            return True
    return False


def as_json(document: dict) -> str:
    return json.dumps(document, indent=2)


# Calls a role makes without a grant in infra/, on purpose, and why.
_MADE_BY_TERRAFORM = (
    "only where no repository exists or it is mutable or unscanned; Terraform's registry module "
    "makes it immutable and scanned, so CI's push role only looks it up (ensure_repository)"
)
NOT_GRANTED_BY_DESIGN: dict[tuple[str, str], str] = {
    ("ci", "ecr:CreateRepository"): _MADE_BY_TERRAFORM,
    ("ci", "ecr:PutImageTagMutability"): _MADE_BY_TERRAFORM,
    ("ci", "ecr:PutImageScanningConfiguration"): _MADE_BY_TERRAFORM,
}


def ungranted(calls, statements_of=role_statements) -> set[tuple[str, str]]:
    """The (role, action) calls no Allow statement of that role names (resources and
    conditions aside), except NOT_GRANTED_BY_DESIGN."""
    held: dict[str, list[dict]] = {}
    missing = set()
    for role, action in calls:
        if role not in held:
            held[role] = statements_of(role)
        if (role, action) not in NOT_GRANTED_BY_DESIGN and not grants(held[role], action):
            missing.add((role, action))
    return missing
