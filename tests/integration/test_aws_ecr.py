import re

import boto3
import pytest

from fearless.aws.ecr import ensure_repository, image_uri, registry_login
from tests.integration.conftest import AWS_REGION

DIGEST = "sha256:" + "ab12" * 16


@pytest.fixture
def ecr(moto_endpoint):
    return boto3.client("ecr", region_name=AWS_REGION, endpoint_url=moto_endpoint)


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
