"""The flow image's Dockerfile, checked statically (Docker does not run here): it holds the
project where the settings say, with the environment `make install` makes, runs as a user who
can write the state a flow run keeps, and has the tools the flows call."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from fearless.bundles.image import BASE_IMAGE
from fearless.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deployments" / "flow-image.Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def _all(name: str) -> list[str]:
    return [args for instruction, args in _instructions() if instruction == name]


def _extras(command: str) -> set[str]:
    return set(re.findall(r"--extra ([\w-]+)", command))


def test_it_holds_the_project_where_flow_runs_look_for_it_on_the_same_python():
    assert _all("FROM") == [BASE_IMAGE]  # the bundle's image's Python: one to keep current
    project_dir = Settings.model_fields["aws_flow_project_dir"].default
    assert _all("WORKDIR") == [project_dir]
    env = " ".join(_all("ENV"))
    assert f"PATH={project_dir}/.venv/bin:" in env  # `python`, `prefect`, `locust` are its own


def test_its_environment_is_the_locked_one_with_the_extras_make_install_takes():
    make_install = re.search(
        r"^install:.*?(?=^\S)", (ROOT / "Makefile").read_text(), re.MULTILINE | re.DOTALL
    )
    wanted = _extras(make_install[0])
    syncs = [run for run in _all("RUN") if "uv sync" in run]
    assert len(syncs) == 2  # dependencies in a layer of their own, then the project
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync
        assert _extras(sync) == wanted
    assert "--no-install-project" in syncs[0] and "--no-install-project" not in syncs[1]
    copied = [args.split()[0] for args in _all("COPY") if not args.startswith("--from")]
    assert copied == ["pyproject.toml", "."]  # uv.lock beside it, then the whole project


def test_it_runs_as_a_user_who_can_write_a_flow_runs_state():
    [user] = _all("USER")
    assert user.isdigit() and user != "0"
    state = Settings.model_fields["state_dir"].default.relative_to(ROOT)
    project_dir = Settings.model_fields["aws_flow_project_dir"].default
    runs = " ".join(_all("RUN"))
    assert f"mkdir -p {project_dir}/{state}" in runs
    assert f"chown {user}:{user} {project_dir}/{state}" in runs
    assert f"--uid {user}" in runs  # a home of its own: Prefect's profile goes there
    assert _all("VOLUME") == ['["/tmp"]']  # the load generator's read-only root keeps /tmp


def test_it_has_the_programs_the_flows_call():
    installs = " ".join(run for run in _all("RUN") if "apt-get install" in run)
    assert "openssh-client" in installs  # ssh-keygen -Y verify: signed approvals
    assert "git" in installs.split()  # source packs


def test_the_build_context_leaves_out_local_state():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".fearless*"} <= set(ignored)


def test_checkov_finds_no_failed_checks_in_it():
    checkov = Path(sys.executable).parent / "checkov"
    argv = [str(checkov), "-f", str(DOCKERFILE), "--framework", "dockerfile", "--quiet"]
    argv += ["--compact", "--skip-download", "-o", "json"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(out.stdout)
    failed = report["results"].get("failed_checks", [])
    assert not failed, [c["check_id"] for c in failed]
    summary = report["summary"]
    assert summary["passed"] > 0 and summary["parsing_errors"] == 0, summary
    skips = re.findall(r"checkov:skip=(\S+?):(.*)", DOCKERFILE.read_text())
    assert len(skips) == summary["skipped"] and all(reason.strip() for _, reason in skips)
