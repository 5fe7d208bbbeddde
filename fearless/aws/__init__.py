"""AWS plumbing shared by the ECS backend and the S3 registry: clients, tags, prices."""

from __future__ import annotations

from datetime import datetime

TAG_PREFIX = "fearless:"
TAG_KEYS = ("release-id", "model", "digest", "expires-at", "creator", "role")


def make_session(region: str):
    """A boto3 session for `region`; credentials come from the usual AWS chain."""
    import boto3

    return boto3.session.Session(region_name=region)


def client(session, service: str, endpoint_url: str | None = None):
    """A boto3 client; `endpoint_url` points it at a stand-in such as a moto server."""
    return session.client(service, endpoint_url=endpoint_url)


def environment_tags(
    release_id: str, role: str, model: str, digest: str, expires_at: datetime, creator: str
) -> dict[str, str]:
    """The tags every resource of a test environment carries; the janitor finds them by these."""
    return {
        f"{TAG_PREFIX}release-id": release_id,
        f"{TAG_PREFIX}role": role,
        f"{TAG_PREFIX}model": model,
        f"{TAG_PREFIX}digest": digest,
        f"{TAG_PREFIX}expires-at": expires_at.isoformat(timespec="seconds"),
        f"{TAG_PREFIX}creator": creator,
    }


def tag_list(tags: dict[str, str], key: str = "key", value: str = "value") -> list[dict]:
    """Tags as the `[{key, value}]` list most AWS APIs take (ECS: lower case, Cloud Map: Key)."""
    return [{key: k, value: v} for k, v in tags.items()]


def tag_dict(tags: list[dict] | None) -> dict[str, str]:
    """A `[{key, value}]` list of either spelling back into a dict."""
    return {t.get("key", t.get("Key")): t.get("value", t.get("Value")) for t in tags or []}
