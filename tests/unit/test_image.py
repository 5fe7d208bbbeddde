import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fearless.bundles.bundle import build_bundle
from fearless.bundles.image import dockerfile_for
from fearless.cli import app
from fearless.registry.local import LocalRegistry
from fearless.spec import load_spec

HADOLINT = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hadolint"


def _hadolint(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HADOLINT), "--no-color", "-"], input=text, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def dockerfile(credit_project) -> str:
    return dockerfile_for(load_spec(credit_project))


def test_dockerfile_is_hadolint_clean_pinned_non_root_with_healthcheck(dockerfile):
    linted = _hadolint(dockerfile)
    assert linted.returncode == 0 and linted.stdout == "", linted.stdout
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+$", dockerfile, re.MULTILINE)
    assert re.search(r"^USER [1-9]\d*$", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*CMD \[", dockerfile, re.MULTILINE)


@pytest.mark.parametrize(
    ("before", "after", "rule"),
    [
        ("FROM python:3.11.7-slim-bookworm", "FROM python:latest", "DL3007"),
        ("pip install --no-cache-dir -r", "pip install -r", "DL3042"),
        ("USER 10001", "USER model", "DL3066"),
    ],
)
def test_hadolint_catches_a_broken_variant(dockerfile, before, after, rule):
    assert before in dockerfile
    linted = _hadolint(dockerfile.replace(before, after, 1))
    assert linted.returncode != 0 and rule in linted.stdout


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    return tmp_path / "state"


def test_image_build_without_docker_writes_the_context_and_says_so(credit_project, state):
    bundle = build_bundle(credit_project, LocalRegistry(state / "registry"))
    result = CliRunner().invoke(app, ["image", "build", bundle.digest])
    context = state / "images" / f"credit-{bundle.short_digest}"
    assert result.exit_code == 1, result.output
    assert "cannot build the image here" in result.output and str(context) in result.output
    dockerfile = (context / "Dockerfile").read_text()
    assert (context / "bundle" / "manifest.json").is_file()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            sources = line.split()[1:-1]
            assert all((context / s).exists() for s in sources), line


def test_image_build_bad_requests(credit_project, state, tmp_path):
    unknown = CliRunner().invoke(app, ["image", "build", "sha256:" + "0" * 64])
    assert unknown.exit_code == 2 and "not a bundle folder" in unknown.output
    push = CliRunner().invoke(app, ["image", "build", str(credit_project), "--push"])
    assert push.exit_code == 2 and "FEARLESS_AWS_ECR_REPOSITORY" in push.output
