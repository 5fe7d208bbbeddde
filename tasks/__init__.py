"""Prefect tasks: each a thin wrapper over one plain function of the `fearless` library."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_scoped(context: Any, parameters: dict[str, Any]) -> str:
    """Cache a step within its flow run only.

    A release resumed after approval re-runs its flow from the top; finished steps then return
    their persisted results instead of running again. A new release never reuses them.
    """
    return f"{context.task_run.flow_run_id}:{context.task.name}"


STEP = {"cache_key_fn": run_scoped, "persist_result": True}


def provision_scoped(context: Any, parameters: dict[str, Any]) -> str:
    """Like `run_scoped`, but a resumed run whose environments did not survive its lost
    process provisions them anew (fearless.release.recovery)."""
    from fearless.release.recovery import provision_generation

    return f"{run_scoped(context, parameters)}:{provision_generation()}"


PROVISION_STEP = {**STEP, "cache_key_fn": provision_scoped}


def link_report(services, release_id: str, key: str, path: Path, text: str):
    """Publish a report where a person's browser reaches it (the server's report route, or
    S3) and link it as a Prefect artifact whose text says until when a presigned link works."""
    from prefect.artifacts import create_link_artifact

    link = services.reports.publish(release_id, path)
    until = f", link valid until {link.expires_at:%Y-%m-%d %H:%M} UTC" if link.expires_at else ""
    create_link_artifact(key=key, link=link.url, link_text=text + until)
    return link


def log_down(logger, outcome) -> None:
    """Each model API a gate saw stop, with its last log lines."""
    for down in outcome.down:
        logger.error("%s; its last log lines:\n%s", down.describe(), down.log_tail)
