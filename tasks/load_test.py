from __future__ import annotations

from pathlib import Path
from uuid import UUID

from prefect import get_run_logger, runtime, task
from prefect.artifacts import create_table_artifact

from fearless.composition import build_services
from fearless.loadtest.runner import LoadTestResult
from fearless.platform.slots import load_test_slot
from fearless.platform.work_pools import kind_for
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.gates import LoadTestOutcome, run_load_test_gate
from tasks import STEP, link_report, log_down


@task(name="run-load-test", **STEP)
def run_load_test(release_id: str, candidate: Candidate, envs: TestEnvironments) -> LoadTestOutcome:
    """Drive the candidate with Locust under the spec's profile and judge its SLOs, holding the
    host's load-test slot where runs share a machine."""
    services, logger = build_services(), get_run_logger()
    out_dir = services.settings.paths.run_dir(release_id) / "loadtest"
    flow_run_id = UUID(runtime.flow_run.id)
    with load_test_slot(kind_for(services.settings), flow_run_id, logger.info) as slot:
        generator = services.load_generator(release_id)
        outcome = run_load_test_gate(candidate, envs, out_dir, services.environments, generator)
    outcome.slot = slot
    logger.info(slot.describe())
    log_down(logger, outcome)
    if outcome.verdict is not None:
        create_table_artifact(
            key=f"load-test-{release_id}",
            table=[check.model_dump() for check in outcome.verdict.checks],
            description=f"SLO checks of {candidate.digest}",
        )
    runs = {"candidate": outcome.result, "champion": outcome.champion}
    create_table_artifact(
        key=f"load-test-figures-{release_id}",
        table=[figures(role, result) for role, result in runs.items() if result is not None],
        description="What Locust measured, under the same profile and traffic for each",
    )
    if outcome.result is not None:
        link_report(
            services, release_id, f"load-test-report-{release_id}",
            Path(outcome.result.report_html), "Locust report of the candidate (HTML)",
        )  # fmt: skip
    logger.info("load test: %s", "; ".join(outcome.reasons + outcome.notes) or "all SLOs met")
    return outcome


def figures(role: str, result: LoadTestResult) -> dict:
    """One row of the figures table."""
    return {
        "api": role,
        "requests": result.requests,
        "req/s": round(result.rps, 1),
        "asked req/s": result.target_rps
        if result.target_rps is not None
        else "as fast as answered",
        "error rate": round(result.error_rate, 4),
        "p50 ms": result.p50_ms,
        "p95 ms": result.p95_ms,
        "p99 ms": result.p99_ms,
        "generator busy %": round(result.generator_busy_pct) if result.generator_measured else "",
        "host others + steal %": round(result.host.disturbance_pct) if result.host else "",
    }
