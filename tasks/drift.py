from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact

from fearless.composition import build_services
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.gates import DriftOutcome, run_drift_gate
from tasks import STEP
from tasks.approval import report_text


@task(name="check-drift", **STEP)
def check_drift(release_id: str, candidate: Candidate, envs: TestEnvironments) -> DriftOutcome:
    """Evidently: reference vs served traffic, and candidate vs champion predictions."""
    services = build_services()
    out_dir = services.settings.paths.run_dir(release_id) / "drift"
    log_dir = services.environments.inference_log_dir(envs.candidate)
    outcome = run_drift_gate(
        candidate, envs, log_dir, out_dir, services.environments, services.launcher
    )
    logger = get_run_logger()
    for down in outcome.down:
        logger.error("%s; its last log lines:\n%s", down.describe(), down.log_tail)
    create_table_artifact(
        key=f"drift-{release_id}",
        table=[column.model_dump() for column in outcome.scores.columns],
        description=f"Drift of served traffic against reference: report {outcome.scores.report_html}",
    )
    if outcome.scores.report_html:
        report = services.reports.publish(release_id, Path(outcome.scores.report_html))
        create_link_artifact(
            key=f"drift-report-{release_id}",
            link=report.url,
            link_text=report_text("Evidently drift report (HTML)", report),
        )
    logger.info("drift: %s", "; ".join(outcome.reasons + outcome.notes) or "within thresholds")
    return outcome
