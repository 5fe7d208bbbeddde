"""Start a release from the Prefect UI or a schedule: validate, then hand the pipeline its own queue."""

from __future__ import annotations

from prefect import flow, get_run_logger

from fearless.composition import build_services
from fearless.release.options import ReleaseOptions
from fearless.release.runs import ReleaseStarted, start_release
from fearless.settings import get_settings


@flow(name="release")
def release(
    model_path: str = "examples/credit",
    git_ref: str | None = None,
    options: ReleaseOptions | None = None,
    overrides: dict | None = None,
) -> ReleaseStarted:
    """Release a model project through every gate, on a work queue of its own.

    Args:
        model_path: The model project folder (holding fearless.yaml), relative to the repository root.
        git_ref: The git commit or ref to release; the worker's copy of the folder must be that ref's tree. Empty: the copy as it is.
        options: Changes to the spec's load test, SLOs, drift thresholds or approval timeout for this run.
        overrides: Any other spec values for this run, e.g. {"load": {"batch_size": 4}}.
    """
    merged = {**(overrides or {})}
    for section, values in (options or ReleaseOptions()).to_overrides().items():
        merged[section] = {**merged.get(section, {}), **values}
    settings = get_settings()
    started = start_release(
        settings,
        build_services(settings).registry,
        model_path,
        overrides=merged,
        git_ref=git_ref,
        started_by="prefect",
    )
    get_run_logger().info(
        "release %s runs on queue %s: %s; source: %s",
        started.release_id, started.queue, started.url, started.source.describe(),
    )  # fmt: skip
    return started
