"""`fearless simulate RUN_ID`: another load test or drift scenario against a live candidate."""

from __future__ import annotations

from typing import Annotated

import typer


def simulate(
    run_id: Annotated[str, typer.Argument(help="Release id whose candidate is still up.")],
    profile: Annotated[
        str | None, typer.Option(help="steady, ramp, spike, step or soak (default: the spec's).")
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="A drift scenario from simulations/scenarios.yaml.")
    ] = None,
    traffic: Annotated[
        str, typer.Option(help="synthetic (from the reference data) or replay (production logs).")
    ] = "synthetic",
    since: Annotated[
        str | None, typer.Option(help="With --traffic replay: logs from (24h, 2d, ISO time).")
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="With --traffic replay: keep the recorded timing, sped up (1 = real)."),
    ] = None,
    users: Annotated[int | None, typer.Option(help="Peak users (default: the spec's).")] = None,
    duration: Annotated[int | None, typer.Option(help="Seconds (default: the spec's).")] = None,
    processes: Annotated[int, typer.Option(help="Locust worker processes (-1: one per core).")] = 0,
) -> None:
    """Load-test the release's candidate again; results go under its run's simulations/<n>/
    and into its evidence."""
    from pydantic import ValidationError

    from fearless.commands.drift import parse_since
    from fearless.composition import build_services
    from fearless.evidence import EvidenceError, rebuild_evidence
    from fearless.loadtest.runner import LoadTestError
    from fearless.loadtest.simulation import SimulationError, SimulationRequest, run_simulation
    from fearless.platform.reports import publishing_links

    services = build_services()
    paths = services.settings.paths
    try:
        request = SimulationRequest(
            release_id=run_id, profile=profile, users=users, duration_s=duration,
            scenario=scenario, traffic=traffic, replay_speed=speed, processes=processes,
            replay_since=parse_since(since) if since else None,
        )  # fmt: skip
        outcome = run_simulation(
            request, services.environments, services.registry,
            paths.run_dir(run_id), paths.inference_logs,
        )  # fmt: skip
    except (SimulationError, LoadTestError, ValidationError, ValueError) as exc:
        typer.secho(f"simulate {run_id}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    r, verdict = outcome.result, outcome.verdict
    typer.echo(f"simulation {outcome.number} of {run_id} against {outcome.target}")
    typer.echo(f"  profile {r.profile}, {r.users} users, {r.duration_s:.1f} s, traffic {traffic}"
               + (f", scenario {scenario}" if scenario else ""))  # fmt: skip
    typer.echo(f"  {r.requests} requests, {r.rps:.1f} req/s, errors {r.error_rate:.2%}")
    typer.echo(f"  p50 {r.p50_ms:g} ms, p95 {r.p95_ms:g} ms, p99 {r.p99_ms:g} ms")
    typer.echo(f"  generator busy {r.generator_busy_pct:.0f}% of {r.generator_cores} core(s)")
    state = "inconclusive" if verdict.inconclusive else "passed" if verdict.passed else "failed"
    typer.echo(f"verdict: {state}" + "".join(f"\n  - {reason}" for reason in verdict.reasons))
    typer.echo(f"reports: {outcome.out_dir}")
    links = publishing_links(services.reports, run_id, paths.run_dir(run_id))
    try:
        files = rebuild_evidence(paths.run_dir(run_id), links)
    except EvidenceError as exc:
        typer.echo(f"evidence not updated: {exc}; this simulation joins it once it is")
    else:
        typer.echo(f"evidence updated: {files.html}")
        typer.echo(f"  {services.reports.publish(run_id, files.html).describe()}")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
