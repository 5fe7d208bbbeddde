"""Nightly drift of production traffic against each production model's reference data.

`nightly-drift` runs on a schedule (prefect.yaml) and emits `fearless.drift.detected` for each
drifted model; the `fearless-drift-alert` automation answers with a `drift-alert` run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from fearless.composition import build_services
from fearless.drift.alerts import record_alert
from fearless.drift.nightly import ModelDrift, check_production_drift, drift_event
from fearless.release.notifications import drift_notice, notifier_from


@flow(name="nightly-drift")
def nightly_drift(hours: float = 24.0) -> list[ModelDrift]:
    """Check the last `hours` of each production model's inference logs for drift."""
    from fearless.drift.process import run_drift_subprocess

    services = build_services()
    paths, logger = services.settings.paths, get_run_logger()
    since = datetime.now(UTC) - timedelta(hours=hours)

    def run_drift(*args):
        return run_drift_subprocess(*args, launcher=services.launcher)

    results = check_production_drift(
        services.registry, services.production_logs, paths.root / "drift", since, run_drift
    )
    for result in results:
        logger.info("%s: %s %s", result.model, result.status, "; ".join(result.reasons))
        if result.status == "drifted":
            emit_event(**drift_event(result))
    create_table_artifact(
        key="nightly-drift",
        table=[r.row() for r in results] or [{"status": "no model has a production alias"}],
        description=f"Production traffic since {since:%Y-%m-%d %H:%M} UTC against reference",
    )
    return results


@flow(name="drift-alert")
def drift_alert(model: str, payload: dict) -> str:
    """Started by the `fearless-drift-alert` automation: record and log one drift alert, and
    send it through the notification blocks the settings name."""
    settings = build_services().settings
    message = record_alert(settings.paths.root / "alerts" / "drift.jsonl", model, payload)
    notifier_from(settings).send(drift_notice(model, message))
    get_run_logger().warning(message)
    create_markdown_artifact(key=f"drift-alert-{model}", markdown=f"**{message}**")
    return message
