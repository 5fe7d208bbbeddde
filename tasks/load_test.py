from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from fearless.candidate import Candidate, TestEnvironments
from fearless.composition import build_services
from fearless.gates import LoadTestOutcome, run_load_test_gate
from tasks import STEP


@task(name="run-load-test", **STEP)
def run_load_test(release_id: str, candidate: Candidate, envs: TestEnvironments) -> LoadTestOutcome:
    """Drive the candidate with Locust under the spec's profile and judge its SLOs."""
    out_dir = build_services().settings.paths.run_dir(release_id) / "loadtest"
    outcome = run_load_test_gate(candidate, envs, out_dir)
    create_table_artifact(
        key=f"load-test-{release_id}",
        table=[check.model_dump() for check in outcome.verdict.checks],
        description=f"Load test of {candidate.digest}: report {outcome.result.report_html}",
    )
    get_run_logger().info("load test: %s", "; ".join(outcome.reasons) or "all SLOs met")
    return outcome
