"""Start a release from the Prefect UI or a schedule: validate, then hand the pipeline its own queue."""

from __future__ import annotations

from prefect import flow, get_run_logger

from fearless.releases import ReleaseStarted, start_release
from fearless.settings import get_settings


@flow(name="release")
def release(
    model_path: str = "examples/credit", git_ref: str | None = None, overrides: dict | None = None
) -> ReleaseStarted:
    """Release the model project at `model_path` (relative to the project root)."""
    started = start_release(
        get_settings(), model_path, overrides=overrides, git_ref=git_ref, started_by="prefect"
    )
    get_run_logger().info(
        "release %s runs on queue %s: %s", started.release_id, started.queue, started.url
    )
    return started
