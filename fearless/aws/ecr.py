"""The ECR repository bundle images are pushed to: scanned on push, tags immutable, tagged.

A bundle's image tag is its short digest, so an immutable tag means a tag can never point at
anything but the bundle it names.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from fearless.aws import TAG_PREFIX, tag_list


@dataclass(frozen=True)
class RegistryLogin:
    """What `docker login` needs for an ECR registry."""

    endpoint: str
    username: str
    password: str


def repository_name(repository: str) -> str:
    """`<acct>.dkr.ecr.<region>.amazonaws.com/<name>` or a bare name, as the bare name."""
    return repository.split("/", 1)[1] if ".dkr.ecr." in repository else repository


def ensure_repository(ecr, repository: str, creator: str) -> str:
    """Create the repository, or bring an existing one to scan on push with immutable tags;
    returns its URI. Safe to repeat. An existing one is looked up first, so a CI role that
    may only push to the repository Terraform made needs no ecr:CreateRepository."""
    name = repository_name(repository)
    try:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        try:
            created = ecr.create_repository(
                repositoryName=name,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
                tags=tag_list({f"{TAG_PREFIX}creator": creator}, "Key", "Value"),
            )
            return created["repository"]["repositoryUri"]
        except ecr.exceptions.RepositoryAlreadyExistsException:  # another job was quicker
            found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    if found.get("imageTagMutability") != "IMMUTABLE":
        ecr.put_image_tag_mutability(repositoryName=name, imageTagMutability="IMMUTABLE")
    if not found.get("imageScanningConfiguration", {}).get("scanOnPush"):
        ecr.put_image_scanning_configuration(
            repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
        )
    return found["repositoryUri"]


def registry_login(ecr) -> RegistryLogin:
    """A short-lived docker login for the account's ECR registry."""
    data = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryLogin(endpoint=data["proxyEndpoint"], username=username, password=password)


def image_exists(ecr, repository: str, tag: str) -> bool:
    """Whether `repository` (URI or bare name) holds an image tagged `tag`; a repository that
    does not exist holds none. A URI's account is asked, so a shared registry is found too."""
    account = repository.split(".", 1)[0] if ".dkr.ecr." in repository else None
    try:
        ecr.describe_images(
            repositoryName=repository_name(repository),
            imageIds=[{"imageTag": tag}],
            **({"registryId": account} if account else {}),
        )
    except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException):
        return False
    return True


def image_uri(repository_uri: str, digest: str) -> str:
    """`<acct>.dkr.ecr.<region>.amazonaws.com/<repo>:<digest12>`: the tag is the short digest."""
    return f"{repository_uri}:{digest.removeprefix('sha256:')[:12]}"
