from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from fearless.composition import build_services
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.gates import DriftOutcome, run_drift_gate
from tasks import STEP, beside_no_load_test, link_report, log_down


@task(name="check-drift", **STEP)
def check_drift(release_id: str, candidate: Candidate, envs: TestEnvironments) -> DriftOutcome:
    """Evidently: reference vs served traffic, and candidate vs champion predictions."""
    services = build_services()
    out_dir = services.settings.paths.run_dir(release_id) / "drift"
    log_dir = services.environments.inference_log_dir(envs.candidate)
    with beside_no_load_test(services, release_id, "drift check"):
        outcome = run_drift_gate(
            candidate, envs, log_dir, out_dir, services.environments, services.launcher
        )
    logger = get_run_logger()
    log_down(logger, outcome)
    report = "none"
    if outcome.scores.report_html:
        report = link_report(
            services, release_id, f"drift-report-{release_id}",
            Path(outcome.scores.report_html), "Evidently drift report (HTML)",
        ).describe()  # fmt: skip
    create_table_artifact(
        key=f"drift-{release_id}",
        table=[column.model_dump() for column in outcome.scores.columns],
        description=f"Drift of served traffic against reference: report {report}",
    )
    logger.info("drift: %s", "; ".join(outcome.reasons + outcome.notes) or "within thresholds")
    return outcome
