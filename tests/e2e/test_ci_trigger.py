"""The GitHub Action, used from another repository, against the session's Prefect server.

The action's steps run with bash as a runner runs them: `GITHUB_WORKSPACE` is a throwaway
repository that holds a model project and no Fearless code, `GITHUB_ACTION_PATH` is this
checkout, and the worker's working directory (this checkout) does not hold that project.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from fearless.bundles.bundle import stage_bundle
from tests.conftest import ROOT
from tests.e2e.conftest import FAST, fearless_cli
from tests.unit.test_source import git

pytestmark = pytest.mark.e2e

MODEL = "outside-credit"  # a model of its own: other e2e tests release `credit`


def action_steps() -> list[dict]:
    return yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]


def outside_virtualenvs(path: str) -> list[str]:
    """PATH without any virtualenv's bin folder, as on a fresh runner."""
    return [p for p in path.split(os.pathsep) if not (Path(p).parent / "pyvenv.cfg").is_file()]


class Runner:
    """Runs the action's steps as GitHub's runner does: inputs and `github.*` substituted,
    `bash --noprofile --norc -eo pipefail`, GITHUB_PATH/GITHUB_OUTPUT/GITHUB_STEP_SUMMARY files."""

    def __init__(self, workspace: Path, tmp_path: Path, **inputs: str) -> None:
        action = yaml.safe_load((ROOT / "action.yml").read_text())
        defaults = {k: v.get("default", "") for k, v in action["inputs"].items()}
        self.inputs = {**defaults, "prefect-api-url": os.environ["PREFECT_API_URL"], **inputs}
        self.workspace, self.files = (
            workspace,
            {name: tmp_path / f"github_{name}" for name in ("path", "output", "step_summary")},
        )
        for path in self.files.values():
            path.write_text("")
        self.path_entries: list[str] = []

    def expand(self, text: str) -> str:
        text = re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", lambda m: self.inputs[m[1]], text)
        return text.replace("${{ github.workspace }}", str(self.workspace))

    def wanted(self, step: dict) -> bool:
        condition = step.get("if")
        if condition is None:
            return True
        name = re.fullmatch(r"inputs\.([\w-]+) != ''", condition)[1]
        return self.inputs[name] != ""

    def popen(self, step: dict, sha: str) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIRTUAL_ENV")}
        path = outside_virtualenvs(env["PATH"])  # the runner has no Fearless on its PATH
        env |= {k: self.expand(str(v)) for k, v in step.get("env", {}).items()}
        env |= {
            "PATH": os.pathsep.join([*self.path_entries, *path]),
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_ACTION_PATH": str(ROOT),
            "GITHUB_SHA": sha,
            "GITHUB_PATH": str(self.files["path"]),
            "GITHUB_OUTPUT": str(self.files["output"]),
            "GITHUB_STEP_SUMMARY": str(self.files["step_summary"]),
        }
        cwd = self.expand(step.get("working-directory", str(self.workspace)))
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]]
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def start(self, sha: str) -> subprocess.Popen:
        """Run every step before the release, then start the release step and return it."""
        for step in action_steps():
            if not self.wanted(step):
                continue
            proc = self.popen(step, sha)
            if step.get("id") == "trigger":
                return proc
            output = proc.communicate(timeout=300)[0]
            assert proc.returncode == 0, f"step {step['name']!r} failed:\n{output}"
            self.path_entries = self.files["path"].read_text().split() + self.path_entries
        raise AssertionError("the action has no step with id 'trigger'")


@pytest.fixture
def team_repo(credit_project, tmp_path) -> Path:
    """Another team's repository: one model project at models/credit, no Fearless code."""
    root = tmp_path / "team-repo"
    project = Path(shutil.copytree(credit_project, root / "models" / "credit"))
    commit_spec(root, name=MODEL, **FAST)
    assert (project / "fearless.yaml").is_file() and not (root / "fearless").exists()
    return root


def commit_spec(repo: Path, message: str = "model", **changes) -> str:
    spec_path = repo / "models" / "credit" / "fearless.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    for key, value in changes.items():
        spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    if not (repo / ".git").exists():
        git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def bundle_digest_of(repo: Path, sha: str) -> str:
    """The digest of the project as the commit holds it, built apart from any release."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", sha, "models/credit"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        return stage_bundle(Path(tmp) / "models" / "credit", Path(tmp) / "bundle")


def release_from_push(repo: Path, tmp_path: Path, sha: str) -> tuple[str, str]:
    """Run the action for a push of `sha`, approve at the gate; (release id, all output).

    While the release runs, the workspace is moved away: the worker must build what the
    action packed, not read the caller's files."""
    (tmp_path / sha[:8]).mkdir(exist_ok=True)
    runner = Runner(repo, tmp_path / sha[:8], project="models/credit")
    proc = runner.start(sha)
    first = proc.stdout.readline()
    hidden = repo.with_name(repo.name + "-moved-away")
    repo.rename(hidden)
    try:
        release_id = re.match(r"release (\S+) ", first)[1]
        lines = [first]
        for line in proc.stdout:
            lines.append(line)
            if "Suspended" in line or "outcome:" in line:
                break
        approved = fearless_cli("approve", release_id, "--by", "ci-test", "--comment", "ok")
        assert approved.returncode == 0, approved.stderr + "".join(lines)
        output = "".join(lines) + proc.communicate(timeout=300)[0]
    finally:
        hidden.rename(repo)
    assert proc.returncode == 0, output
    assert runner.files["output"].read_text().strip() == "exit-code=0"
    summary = runner.files["step_summary"].read_text()
    assert release_id in summary and "promoted" in summary and sha[:12] in summary
    return release_id, output


def test_the_action_releases_exactly_what_each_push_holds(
    platform, team_repo, credit_challenger, tmp_path
):
    registry = platform.registry
    first_sha = git(team_repo, "rev-parse", "HEAD")
    _, output = release_from_push(team_repo, tmp_path, first_sha)
    assert "outcome: promoted" in output
    first = registry.get_alias(MODEL, "production")
    assert first == bundle_digest_of(team_repo, first_sha)

    shutil.copyfile(
        credit_challenger / "model.skops", team_repo / "models" / "credit" / "model.skops"
    )
    second_sha = commit_spec(team_repo, "retrained model")
    release_from_push(team_repo, tmp_path, second_sha)
    second = registry.get_alias(MODEL, "production")
    assert second == bundle_digest_of(team_repo, second_sha) and second != first

    runs_before = flow_runs_of(MODEL)
    third_sha = commit_spec(team_repo, "broken spec", slos={"p95_ms": "fast"})
    runner = Runner(team_repo, tmp_path, project="models/credit")
    output = runner.start(third_sha).communicate(timeout=120)[0]
    assert "slos.p95_ms" in output and "fearless.yaml" in output, output
    assert runner.files["output"].read_text().strip() == "exit-code=1"
    assert flow_runs_of(MODEL) == runs_before  # refused before anything was submitted
    assert registry.get_alias(MODEL, "production") == second


def test_a_checkout_that_is_not_the_pushed_commit_is_refused(platform, team_repo, tmp_path):
    sha = git(team_repo, "rev-parse", "HEAD")
    model = team_repo / "models" / "credit" / "model.skops"
    model.write_bytes(model.read_bytes() + b"\0")  # a step changed the model after checkout
    runner = Runner(team_repo, tmp_path, project="models/credit")
    output = runner.start(sha).communicate(timeout=120)[0]
    assert f"differs from the tree of {sha}" in output and "model.skops" in output, output
    assert runner.files["output"].read_text().strip() == "exit-code=1"


def test_the_action_fails_with_the_gate_code_when_a_gate_fails(platform, team_repo, tmp_path):
    sha = commit_spec(team_repo, "impossible slo", slos={"p95_ms": 0.001})
    runner = Runner(team_repo, tmp_path, project="models/credit")
    output = runner.start(sha).communicate(timeout=300)[0]
    assert "outcome: load-test-gate-failed" in output, output
    assert runner.files["output"].read_text().strip() == "exit-code=12"
    assert "load-test-gate-failed" in runner.files["step_summary"].read_text()


def flow_runs_of(model: str) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[f"model:{model}"]))
        )
    return len(runs)
