"""Another load test or drift scenario against a release's live candidate (the UI's form).

Its results join the release's evidence: evidence.md/html are rebuilt and the
`evidence-<release>` artifact gets a new version.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from fearless.composition import build_services
from fearless.evidence import EvidenceError, rebuild_evidence
from fearless.loadtest.simulation import SimulationRequest, run_simulation
from fearless.platform.reports import publishing_links, report_name
from tasks.approval import publish_evidence_artifacts


@flow(name="simulate")
def simulate(
    release_id: str,
    profile: Literal["steady", "ramp", "spike", "step", "soak"] | None = None,
    scenario: str | None = None,
    traffic: Literal["synthetic", "replay"] = "synthetic",
    users: int | None = None,
    duration_s: int | None = None,
    replay_since: datetime | None = None,
    replay_speed: float | None = None,
) -> dict:
    """Drive the live candidate of `release_id` again; add the results to its evidence."""
    services = build_services()
    paths, logger = services.settings.paths, get_run_logger()
    request = SimulationRequest(
        release_id=release_id, profile=profile, scenario=scenario, traffic=traffic,
        users=users, duration_s=duration_s, replay_since=replay_since, replay_speed=replay_speed,
    )  # fmt: skip
    run_dir = paths.run_dir(release_id)
    outcome = run_simulation(
        request, services.environments, services.registry, run_dir, paths.inference_logs
    )
    links = publishing_links(services.reports, release_id, run_dir)
    report = links(report_name(run_dir, Path(outcome.result.report_html)))
    create_table_artifact(
        key=f"simulation-{release_id}-{outcome.number}".lower(),
        table=[check.model_dump() for check in outcome.verdict.checks],
        description=f"Simulation {outcome.number} of {release_id}: report {report.describe()}",
    )
    logger.info(
        "simulation %d: %s", outcome.number, "; ".join(outcome.verdict.reasons) or "all SLOs met"
    )
    try:
        files = rebuild_evidence(run_dir, links)
    except EvidenceError as exc:
        logger.warning("evidence not updated: %s", exc)
    else:
        publish_evidence_artifacts(release_id, files)
        logger.info("evidence updated: %s", files.html)
    return outcome.model_dump(mode="json")
