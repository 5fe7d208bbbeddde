"""Another load test or drift scenario against a release's live candidate (the UI's form)."""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from fearless.composition import build_services
from fearless.loadtest.simulation import SimulationRequest, run_simulation


@flow(name="simulate")
def simulate(
    release_id: str,
    profile: Literal["steady", "ramp", "spike", "step", "soak"] | None = None,
    scenario: str | None = None,
    traffic: Literal["synthetic", "replay"] = "synthetic",
    users: int | None = None,
    duration_s: int | None = None,
) -> dict:
    services = build_services()
    paths = services.settings.paths
    request = SimulationRequest(
        release_id=release_id, profile=profile, scenario=scenario, traffic=traffic,
        users=users, duration_s=duration_s,
    )  # fmt: skip
    outcome = run_simulation(
        request, services.environments, services.registry,
        paths.run_dir(release_id), paths.inference_logs,
    )  # fmt: skip
    create_table_artifact(
        key=f"simulation-{release_id}-{outcome.number}".lower(),
        table=[check.model_dump() for check in outcome.verdict.checks],
        description=f"Simulation {outcome.number} of {release_id}: {outcome.out_dir}",
    )
    get_run_logger().info(
        "simulation %d: %s", outcome.number, "; ".join(outcome.verdict.reasons) or "all SLOs met"
    )
    return outcome.model_dump(mode="json")
