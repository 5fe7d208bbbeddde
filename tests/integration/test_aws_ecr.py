"""The ECR repository of bundle images, against a moto server."""

import json
import re

import boto3
import pytest

from fearless.aws.ecr import ensure_repository, image_exists, image_uri, registry_login
from tests.integration.conftest import AWS_REGION

DIGEST = "sha256:" + "ab12" * 16


@pytest.fixture
def ecr(moto_endpoint):
    return boto3.client("ecr", region_name=AWS_REGION, endpoint_url=moto_endpoint)


def push_manifest(ecr, repository: str, tag: str) -> None:
    """What `fearless image build --push` leaves in ECR, minus the layers moto never stores."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1,
            "digest": "sha256:" + "0" * 64,
        },
        "layers": [],
    }
    ecr.put_image(repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest))


def _settings_of(ecr, name):
    repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
    return repo, {t["Key"]: t["Value"] for t in tags}


def test_ensure_repository_creates_it_scanned_immutable_and_tagged(ecr):
    uri = ensure_repository(ecr, "fearless-models", creator="ci")
    assert ensure_repository(ecr, "fearless-models", creator="ci") == uri
    repo, tags = _settings_of(ecr, "fearless-models")
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert tags == {"fearless:creator": "ci"}
    assert re.fullmatch(
        rf"\d{{12}}\.dkr\.ecr\.{AWS_REGION}\.amazonaws\.com/fearless-models:ab12ab12ab12",
        image_uri(uri, DIGEST),
    )
    assert ensure_repository(ecr, uri, creator="ci") == uri  # the URI form names it too


def test_ensure_repository_fixes_an_existing_mutable_unscanned_one(ecr):
    ecr.create_repository(repositoryName="legacy", imageTagMutability="MUTABLE")
    ensure_repository(ecr, "legacy", creator="ci")
    repo, _ = _settings_of(ecr, "legacy")
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True


def test_registry_login_decodes_the_token(ecr):
    login = registry_login(ecr)
    assert login.username == "AWS" and login.password
    assert login.endpoint.startswith("https://") and ".dkr.ecr." in login.endpoint


def test_image_exists_only_for_a_pushed_tag_of_an_existing_repository(ecr):
    uri = ensure_repository(ecr, "fearless-pushed", creator="ci")
    assert not image_exists(ecr, uri, "ab12ab12ab12")
    push_manifest(ecr, "fearless-pushed", "ab12ab12ab12")
    assert image_exists(ecr, uri, "ab12ab12ab12")
    assert image_exists(ecr, "fearless-pushed", "ab12ab12ab12")  # the bare name works too
    assert not image_exists(ecr, uri, "cd34cd34cd34")
    assert not image_exists(ecr, uri.replace("fearless-pushed", "no-such-repository"), "ab12")


def test_image_build_push_keeps_an_image_already_in_ecr(
    ecr, moto_endpoint, credit_project, tmp_path
):
    """A CI re-run: the digest's image is there, so nothing is built (no Docker needed)."""
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "FEARLESS_AWS_ENDPOINT_URL": moto_endpoint,
        "FEARLESS_AWS_ECR_REPOSITORY": "fearless-rerun",
        "FEARLESS_AWS_REGION": AWS_REGION,
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",  # as without a daemon, anywhere
    }
    argv = [sys.executable, "-m", "fearless.cli", "image", "build", str(credit_project), "--push"]

    def build():
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    first = build()  # no Docker daemon: the build stops, saying so
    assert first.returncode == 1 and "cannot build the image here" in first.stderr, first.stderr
    digest = re.search(r"build context for credit (sha256:\w+)", first.stdout).group(1)
    push_manifest(ecr, "fearless-rerun", digest.removeprefix("sha256:")[:12])
    again = build()
    assert again.returncode == 0, again.stderr
    assert "already in ECR" in again.stdout and digest.removeprefix("sha256:")[:12] in again.stdout
