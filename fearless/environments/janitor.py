"""The janitor: removes test environments whose expiry has passed, whatever left them behind."""

from __future__ import annotations

from datetime import UTC, datetime

from fearless.environments import Environment


def expired_environments(
    environments: list[Environment], now: datetime | None = None
) -> list[Environment]:
    now = now or datetime.now(UTC)
    return [env for env in environments if env.expires_at <= now]


def sweep(backend, *, dry_run: bool = False, now: datetime | None = None) -> list[Environment]:
    """Tear down every release that has an expired environment; return what was (or would be) removed."""
    expired = expired_environments(backend.list(), now)
    if not dry_run:
        for release_id in sorted({env.release_id for env in expired}):
            backend.teardown(release_id)
    return expired
