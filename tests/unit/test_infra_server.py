"""The Prefect server on AWS (infra/modules/prefect_server): an ECS service behind the internal
ALB, its database RDS PostgreSQL, private, encrypted, reached by the server alone, over TLS,
with a password RDS keeps in Secrets Manager; the example uses it when asked to."""

from __future__ import annotations

import json
import re
from importlib.metadata import version

from tests.unit.test_infra import INFRA, blocks, one, parsed, resource

SERVER = INFRA / "modules" / "prefect_server"
EXAMPLE = INFRA / "examples" / "complete"


def _rules(kind: str) -> list[dict]:
    return [body for t, _, body in blocks(SERVER, "resource") if t == kind]


def _container() -> dict:
    """The server's container definition, from its `jsonencode([...])` as python-hcl2 gives it."""
    raw = one(resource(SERVER, "aws_ecs_task_definition")["container_definitions"])
    assert raw.startswith("${jsonencode(")
    return json.loads(raw)[0] if raw.startswith("[") else _literal(raw)


def _literal(raw: str) -> dict:
    import ast

    return ast.literal_eval(raw.removeprefix("${jsonencode(").removesuffix(")}"))[0]


def test_the_database_is_private_encrypted_multi_az_and_kept():
    db = resource(SERVER, "aws_db_instance")
    assert one(db["engine"]) == "postgres"
    expected = {
        "storage_encrypted": True,
        "publicly_accessible": False,
        "multi_az": True,
        "deletion_protection": True,
        "skip_final_snapshot": False,
        "manage_master_user_password": True,  # RDS keeps the password in Secrets Manager
        "iam_database_authentication_enabled": True,
    }
    assert {k: one(db[k]) for k in expected} == expected
    assert "password" not in db  # never in the state or the code
    assert one(db["kms_key_id"]) == one(db["master_user_secret_kms_key_id"]) == "${var.kms_key_arn}"
    params = {
        one(p["name"]): one(p["value"])
        for p in resource(SERVER, "aws_db_parameter_group")["parameter"]
    }
    assert params["rds.force_ssl"] == "1"


def test_only_the_server_reaches_the_database_and_only_the_alb_the_server():
    ingress = {
        (one(r["security_group_id"]), one(r["referenced_security_group_id"]), one(r["from_port"]))
        for r in _rules("aws_vpc_security_group_ingress_rule")
    }
    assert ingress == {
        ("${aws_security_group.database.id}", "${aws_security_group.server.id}", 5432),
        ("${aws_security_group.server.id}", "${var.alb_security_group_id}", "${local.port}"),
        ("${aws_security_group.home.id}", "${aws_security_group.server.id}", 2049),
    }
    assert not [r for r in _rules("aws_vpc_security_group_ingress_rule") if "cidr_ipv4" in r]


def test_the_server_task_connects_over_tls_with_the_managed_password():
    container = _container()
    assert container["command"][:3] == ["prefect", "server", "start"]
    assert container["readonlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["environment"]}
    url = env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://prefect:$${PREFECT_SERVER_DATABASE_PASSWORD}@")
    assert url.endswith("?ssl=require")
    assert env["PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED"] == "true"
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert secrets["PREFECT_SERVER_DATABASE_PASSWORD"].endswith("secret_arn}:password::")
    assert secrets["PREFECT_SERVER_API_AUTH_STRING"] == "${var.prefect_auth_secret_arn}"


def test_one_server_task_behind_the_alb_at_the_locked_prefect_version():
    service = resource(SERVER, "aws_ecs_service")
    assert one(service["desired_count"]) == 1  # more replicas need Redis
    network = one(service["network_configuration"])
    assert one(network["assign_public_ip"]) is False
    assert one(one(service["load_balancer"])["container_port"]) == "${local.port}"
    health = one(resource(SERVER, "aws_lb_target_group")["health_check"])
    assert one(health["path"]) == "/api/health"
    variables = {k: v for item in parsed(SERVER)["variable"] for k, v in item.items()}
    image = one(variables["server_image"]["default"])
    assert re.fullmatch(rf"prefecthq/prefect:{re.escape(version('prefect'))}-python3\.\d+", image)


def test_the_example_runs_the_server_only_when_given_its_host_name():
    module = next(
        body
        for item in parsed(EXAMPLE)["module"]
        for name, body in item.items()
        if name == "prefect_server"
    )
    assert one(module["count"]) == '${var.prefect_server_host_name == "" ? 0 : 1}'
    worker = next(
        body
        for item in parsed(EXAMPLE)["module"]
        for n, body in item.items()
        if n == "prefect_worker"
    )
    assert one(worker["prefect_api_url"]) == "${local.prefect_api_url}"
    main = (EXAMPLE / "main.tf").read_text()
    assert "module.prefect_server[0].api_url" in main


def test_leases_outlive_a_server_task_on_its_encrypted_efs_home():
    """Prefect's concurrency leases live in PREFECT_HOME, as the embedded server keeps them: on
    EFS, a replaced server task finds the slots releases hold instead of losing them."""
    from fearless.platform.server import LEASES_ON_DISK

    env = {e["name"]: e["value"] for e in _container()["environment"]}
    assert env["PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE"] == LEASES_ON_DISK
    (mount,) = _container()["mountPoints"]
    assert mount["containerPath"] == env["PREFECT_HOME"]
    volume = one(resource(SERVER, "aws_ecs_task_definition")["volume"])
    assert one(volume["name"]) == mount["sourceVolume"]
    efs = one(volume["efs_volume_configuration"])
    assert one(efs["file_system_id"]) == "${aws_efs_file_system.home.id}"
    assert one(efs["transit_encryption"]) == "ENABLED"
    assert one(one(efs["authorization_config"])["access_point_id"]) == (
        "${aws_efs_access_point.home.id}"
    )
    home = resource(SERVER, "aws_efs_file_system")
    assert one(home["encrypted"]) is True and one(home["kms_key_id"]) == "${var.kms_key_arn}"
    point = resource(SERVER, "aws_efs_access_point")
    assert one(one(point["posix_user"])["uid"]) == 10001
    assert one(one(point["root_directory"])["path"]) == "/prefect-home"
    targets = resource(SERVER, "aws_efs_mount_target")
    assert one(targets["security_groups"]) == ["${aws_security_group.home.id}"]
    assert one(targets["subnet_id"]) == "${var.subnet_ids[count.index]}"
