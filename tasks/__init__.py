"""Prefect tasks: each a thin wrapper over one plain function of the `fearless` library."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID


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


HOST_WAITS = "host_waits.txt"  # in the run's folder: what heavy steps waited for, for the evidence


@contextmanager
def beside_no_load_test(services, release_id: str, step: str) -> Iterator[None]:
    """Run a step that keeps a core busy only while no other release's load test runs on this
    host (`fearless.platform.slots`); a wait is logged and kept for the evidence."""
    from prefect import get_run_logger, runtime

    from fearless.platform.slots import heavy_step_slot
    from fearless.platform.work_pools import kind_for

    logger = get_run_logger()
    flow_run_id = UUID(runtime.flow_run.id)
    with heavy_step_slot(kind_for(services.settings), flow_run_id, step, logger.info) as wait:
        yield
    if wait.behind:
        said = f"{step} {wait.describe()}"
        logger.info(said)
        run_dir = services.settings.paths.run_dir(release_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / HOST_WAITS).open("a") as waits:
            waits.write(said + "\n")


def host_waits(services, release_id: str) -> list[str]:
    """What the release's heavy steps waited for (`beside_no_load_test`), each said."""
    path = services.settings.paths.run_dir(release_id) / HOST_WAITS
    return path.read_text().splitlines() if path.exists() else []
