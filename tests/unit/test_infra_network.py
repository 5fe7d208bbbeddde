"""The security groups open each path a release needs, and none other (parsed Terraform)."""

from __future__ import annotations

import re

from fearless.environments.ecs.config import PORT
from fearless.loadtest.fleet import MASTER_PORT
from tests.unit.test_infra import INFRA, blocks, one, parsed, resource

NETWORK = INFRA / "modules" / "network"


def _group(ref: str) -> str:
    return re.fullmatch(r"\$\{aws_security_group\.(\w+)\.id\}", ref)[1]


def rules() -> set[tuple[str, str, str, int]]:
    """(direction, group, peer, port): peer is a group name or a CIDR."""
    found = set()
    for type_, _, body in blocks(NETWORK, "resource"):
        if type_ not in (
            "aws_vpc_security_group_ingress_rule",
            "aws_vpc_security_group_egress_rule",
        ):
            continue
        direction = "in" if "ingress" in type_ else "out"
        port = int(one(body["from_port"]))
        assert port == int(one(body["to_port"])) and one(body["ip_protocol"]) == "tcp"
        peer = body.get("referenced_security_group_id")
        peer = (
            _group(one(peer)) if peer else one(body["cidr_ipv4"]).replace("${var.vpc_cidr}", "vpc")
        )
        groups = one(body.get("for_each", {})) or {}
        targets = (
            [_group(v) for v in groups.values()]
            if groups
            else [_group(one(body["security_group_id"]))]
        )
        found |= {(direction, g, peer, port) for g in targets}
    return found


def test_each_path_a_release_needs_is_open_and_none_other():
    assert rules() == {
        # flow-run tasks (worker group) -> a test environment's model API
        ("out", "worker", "environments", 8080),
        ("in", "environments", "worker", 8080),
        # ALB -> production's model API; callers inside the VPC -> ALB
        ("out", "alb", "environments", 8080),
        ("in", "environments", "alb", 8080),
        ("in", "alb", "vpc", 443),
        # production's model API -> a bake's shadow, which runs in production's own group
        ("out", "environments", "environments", 8080),
        ("in", "environments", "environments", 8080),
        # the load generator's workers -> its master, both flow-run tasks (worker group)
        ("out", "worker", "worker", 5557),
        ("in", "worker", "worker", 5557),
        # flow-run tasks and model APIs -> S3, ECR, CloudWatch Logs, the Prefect API
        ("out", "worker", "0.0.0.0/0", 443),
        ("out", "environments", "0.0.0.0/0", 443),
    }


def test_flow_run_tasks_are_given_the_worker_group():
    outputs = (INFRA / "examples" / "complete" / "outputs.tf").read_text()
    assert re.search(
        r"FEARLESS_AWS_FLOW_SECURITY_GROUPS\s*=\s*jsonencode\(\[module\.network\."
        r"worker_security_group_id\]\)",
        outputs,
    )


def test_production_tasks_reach_a_bakes_shadow_in_their_own_group_and_resolve_its_name():
    """The shadow runs with production's network configuration (EcsEnvironments.provision), so
    production's group must admit itself on the container port, both ways (SGs check egress
    too); its Cloud Map name resolves in the VPC the namespace is associated with."""
    both_ways = {(d, "environments", "environments", PORT) for d in ("in", "out")}
    assert both_ways <= rules()
    example = {
        n: b for m in parsed(INFRA / "examples" / "complete")["module"] for n, b in m.items()
    }
    production = example["production_service"]
    assert one(production["security_group_ids"]) == [
        "${module.network.environments_security_group_id}"
    ]
    assert one(example["network"]["vpc_id"]) == one(production["vpc_id"]) == "${var.vpc_id}"
    assert one(example["network"]["private_subnet_ids"]) == one(production["subnet_ids"])
    namespace = resource(NETWORK, "aws_service_discovery_private_dns_namespace")
    assert one(namespace["vpc"]) == "${var.vpc_id}"


def test_load_generator_workers_reach_their_master_within_the_worker_group_alone():
    """EcsFleet starts the master and its workers with the flow-run tasks' security groups;
    a worker connects to the master's private IP on Locust's port, which no other group may
    reach, and the group reaches nothing else on it."""
    on_locust_port = {r for r in rules() if r[3] == MASTER_PORT}
    assert on_locust_port == {(d, "worker", "worker", MASTER_PORT) for d in ("in", "out")}
    loadgen = parsed(INFRA / "modules" / "load_generator")
    assert one(one(loadgen["locals"])["master_port"]) == MASTER_PORT
