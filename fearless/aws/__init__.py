"""AWS plumbing shared by the ECS backend and the S3 registry: clients, tags, prices."""

from __future__ import annotations

from datetime import datetime

TAG_PREFIX = "fearless:"
TAG_KEYS = ("release-id", "model", "digest", "expires-at", "creator", "role")


RETRY_MODES = ("standard", "adaptive")


def make_session(region: str):
    """A boto3 session for `region`; credentials come from the usual AWS chain."""
    import boto3

    return boto3.session.Session(region_name=region)


def retry_config(mode: str = "standard", max_attempts: int = 5):
    """How every Fearless AWS client retries: botocore's `standard` (or `adaptive`) mode, which
    retries throttling errors, 5xx answers and dropped connections with jittered exponential
    backoff, `max_attempts` attempts in all; anything else (a 4xx such as a failed condition)
    is answered at once."""
    from botocore.config import Config

    if mode not in RETRY_MODES:
        raise ValueError(f"AWS retry mode {mode!r} is not one of {', '.join(RETRY_MODES)}")
    if max_attempts < 1:
        raise ValueError(f"AWS max attempts must be at least 1, not {max_attempts}")
    return Config(retries={"mode": mode, "total_max_attempts": max_attempts})


def client(session, service: str, endpoint_url: str | None = None, config=None):
    """A boto3 client retrying as `config` says (default: `retry_config()`); `endpoint_url`
    points it at a stand-in such as a moto server."""
    return session.client(service, endpoint_url=endpoint_url, config=config or retry_config())


def aws_client(settings, service: str, session=None):
    """The one way Fearless makes an AWS client: region, endpoint and retries from `settings`."""
    config = retry_config(settings.aws_retry_mode, settings.aws_max_attempts)
    session = session or make_session(settings.aws_region)
    return client(session, service, settings.aws_endpoint_url, config)


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
