"""The exact command the GitHub Action runs, against the session's Prefect server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.e2e.conftest import FAST, fearless_cli

pytestmark = pytest.mark.e2e


def action_step(step_id: str) -> dict:
    steps = yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]
    return next(step for step in steps if step.get("id") == step_id)


def fast_project(project: Path, **changes) -> Path:
    spec_path = project / "fearless.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    for section, values in {**FAST, **changes}.items():
        spec[section] = {**spec.get(section, {}), **values}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return project


def start_action(project: Path, tmp_path: Path) -> tuple[subprocess.Popen, dict[str, Path]]:
    """Run the action's `trigger` step script with bash, as the runner would."""
    step = action_step("trigger")
    files = {"output": tmp_path / "github_output", "summary": tmp_path / "step_summary"}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PROJECT": str(project),
        "TIMEOUT": "300",
        "PREFECT_API_AUTH_STRING": "",
        "GITHUB_SHA": "0123456789abcdef",
        "GITHUB_OUTPUT": str(files["output"]),
        "GITHUB_STEP_SUMMARY": str(files["summary"]),
    }
    proc = subprocess.Popen(
        ["bash", "-e", "-c", step["run"]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, files


def test_the_action_exits_0_when_the_release_is_promoted(platform, project_copy, tmp_path):
    proc, files = start_action(fast_project(project_copy), tmp_path)
    first = proc.stdout.readline()
    release_id = re.match(r"release (\S+) ", first).group(1)
    for line in proc.stdout:
        if "Suspended" in line:
            break
    approved = fearless_cli("approve", release_id, "--by", "ci-test", "--comment", "ok")
    assert approved.returncode == 0, approved.stderr
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, first + output
    assert "outcome: promoted" in output
    assert files["output"].read_text().strip() == "exit-code=0"
    summary = files["summary"].read_text()
    assert release_id in summary and "promoted" in summary and "0123456789abcdef" in summary


def test_the_action_fails_with_the_gate_code_when_a_gate_fails(platform, project_copy, tmp_path):
    proc, files = start_action(fast_project(project_copy, slos={"p95_ms": 0.001}), tmp_path)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 12, output
    assert "outcome: load-test-gate-failed" in output
    assert files["output"].read_text().strip() == "exit-code=12"
    assert "load-test-gate-failed" in files["summary"].read_text()
