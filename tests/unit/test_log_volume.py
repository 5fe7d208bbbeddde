"""A model API task can write its inference log (issue 22, defect 6).

Production's task has a read-only root filesystem and runs the image's user, uid 10001. On
Fargate a bind mount is root's (mode 0755) unless the image declares its path a VOLUME, whose
owner it then takes. So every path a task definition mounts must be a VOLUME of the image, the
log dir must be one of them and the image's user's, and the health check must fail while it
cannot be written (else /ready says 200 while every prediction is refused).
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from fearless.aws.prices import fargate_size
from fearless.bundles.health import log_dir_problem
from fearless.bundles.image import USER_ID, dockerfile_for
from fearless.environments.ecs.config import CONTAINER, LOG_DIR, LOG_VOLUME, EcsConfig
from fearless.environments.ecs.definitions import (
    SERVE_COMMAND,
    derived_definition,
    fresh_definition,
    health_check_command,
    with_inference_log,
)
from fearless.spec import ModelSpec
from tests.unit.test_infra import INFRA, one, parsed, resource

MODULE = INFRA / "modules" / "production_service"
SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "m.joblib",
        "reference_data": "r.parquet",
        "schema": {"age": {"type": "int"}},
    }
)


def image() -> dict:
    """What the image's Dockerfile sets up: its user, the folders it gives that user, VOLUMEs."""
    text = dockerfile_for(SPEC).replace("\\\n", " ")
    user = re.search(r"^USER (\S+)$", text, re.MULTILINE)[1]
    owned = set()
    for run in re.findall(r"^RUN (.*)$", text, re.MULTILINE):
        for owner, path in re.findall(r"chown (\S+) (\S+)", run):
            if owner == f"{USER_ID}:{USER_ID}" and f"mkdir -p {path}" in run:
                owned.add(path)
    volumes = ast.literal_eval(re.search(r"^VOLUME (\[.*\])$", text, re.MULTILINE)[1])
    return {"user": user, "owned": owned, "volumes": set(volumes)}


def terraform_definition() -> dict:
    """Production's first task definition as Terraform registers it, its locals filled in."""
    locals_ = {f"${{local.{k}}}": one(v) for k, v in one(parsed(MODULE)["locals"]).items()}

    def fill(value):
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return fill(locals_[value]) if value in locals_ else value

    task = resource(MODULE, "aws_ecs_task_definition")
    text = one(task["container_definitions"]).removeprefix("${jsonencode(").removesuffix(")}")
    return {
        "containerDefinitions": fill(ast.literal_eval(text)),
        "volumes": [{k: one(v) for k, v in volume.items()} for volume in task["volume"]],
        "readonly": True,
    }


def backend_definitions() -> dict[str, dict]:
    """What a release registers: fresh, and copied from a production made before this fix."""
    config = EcsConfig(
        region="us-east-1",
        cluster="c",
        subnets=["s"],
        security_groups=["g"],
        image_repository="repo",
        namespace_id="ns",
        execution_role_arn="exec",
        task_role_arn="task",
        log_group="/logs",
        creator="tests",
    )
    size = fargate_size(0.5, 1024)
    fresh = fresh_definition(config, "f", "repo:1", "sha256:1", size, "r")
    old = fresh_definition(config, "p", "repo:0", "sha256:0", size, "production")
    old["volumes"] = [{"name": "tmp"}]
    container = old["containerDefinitions"][0]
    container["readonlyRootFilesystem"] = True
    container["mountPoints"] = [{"sourceVolume": "tmp", "containerPath": "/tmp"}]
    container["command"] = [*SERVE_COMMAND, "--log-dir", "/tmp/fearless-inference"]
    old = {**old, "cpu": "512", "memory": "1024"}
    derived = derived_definition(old, "e", "repo:1", "sha256:1", size, "r")
    where = "s3://bucket/inference/r/candidate"
    return {
        name: with_inference_log(args, where, "r", "us-east-1")
        for name, args in (("fresh", fresh), ("derived from an older production", derived))
    }


def model_api(definition: dict) -> dict:
    return next(c for c in definition["containerDefinitions"] if c["name"] == CONTAINER)


DEFINITIONS = {"terraform": terraform_definition(), **backend_definitions()}


@pytest.mark.parametrize("name", DEFINITIONS)
def test_task_definitions_and_the_image_agree_on_a_log_dir_its_user_can_write(name):
    definition, built = DEFINITIONS[name], image()
    container = model_api(definition)
    assert built["user"] == str(USER_ID)
    command = container["command"]
    log_dir = command[command.index("--log-dir") + 1]
    assert log_dir == LOG_DIR and LOG_DIR in built["owned"] and LOG_DIR in built["volumes"]
    mounts = {m["containerPath"]: m for m in container["mountPoints"]}
    assert mounts[LOG_DIR].get("readOnly", False) is False
    # Each mount is a plain bind mount (task storage), which takes its owner from the image's
    # VOLUME at that path; any other path would be root's, 0755, and unwritable.
    volumes = {v["name"]: v for v in definition["volumes"]}
    for path, mount in mounts.items():
        assert set(volumes[mount["sourceVolume"]]) == {"name"}, path
        assert path in built["volumes"], f"{path} is mounted but not a VOLUME of the image"
    assert volumes[mounts[LOG_DIR]["sourceVolume"]]["name"] == LOG_VOLUME
    assert container["healthCheck"]["command"] == health_check_command(LOG_DIR)


def test_terraform_declares_the_read_only_root_this_guards():
    container = model_api(DEFINITIONS["terraform"])
    assert container["readonlyRootFilesystem"] is True


def _problem_as(uid: int, path: Path) -> str | None:
    """log_dir_problem(path) checked by `uid` (a forked child; needs root), else by us."""
    if os.getuid() != 0:
        return log_dir_problem(path)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.write(write, (log_dir_problem(path) or "").encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        said = answer.read()
    os.waitpid(pid, 0)
    return said or None


def test_a_bind_mount_left_to_root_is_unwritable_for_the_image_user_and_the_probe_says_so():
    """What Fargate gives a mount with no VOLUME behind it (root, 0755), then what the image's
    VOLUME gives it (the image user's): the health check's verdict on each."""
    folder = Path(tempfile.mkdtemp())
    try:
        folder.chmod(0o755)
        if os.getuid() != 0:
            folder.chmod(0o555)  # not root: take the write bit away from ourselves instead
        problem = _problem_as(USER_ID, folder / "inference")
        assert problem and "inference log dir" in problem and "not writable by uid" in problem
        assert "Permission denied" in problem
        folder.chmod(0o755)
        if os.getuid() == 0:
            os.chown(folder, USER_ID, USER_ID)
        assert _problem_as(USER_ID, folder / "inference") is None
    finally:
        shutil.rmtree(folder)
