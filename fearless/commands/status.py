"""What `fearless status` shows: recent releases and the production services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer


def print_status(settings, run_id: str | None, emit: Callable[[str], None]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from fearless.composition import build_services
    from fearless.release.runs import find_flow_run

    services = build_services(settings)
    with get_client(sync_client=True) as client:
        if run_id:
            runs = [find_flow_run(client, run_id)]
        else:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["release-pipeline"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=20,
            )
    emit("releases:" if runs else "releases: none yet")
    for run in runs:
        state = run.state.name if run.state else "?"
        message = f"  {run.state.message}" if run.state and run.state.message else ""
        emit(f"  {run.name:<24} {state:<12}{message}")
    emit("production:")
    for model in services.registry.models():
        instance = services.production.current(model)
        digest = services.registry.get_alias(model, "production") or "none"
        where = instance.url if instance else "not serving"
        emit(f"  {model:<24} {digest[:19]}  {where}")


def print_pending(settings, emit: Callable[[str], None]) -> int:
    """Releases waiting for a decision, with their evidence and environment expiry."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    from fearless.composition import build_services

    services = build_services(settings)
    expiry = {env.release_id: env.expires_at for env in services.environments.list()}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["release-pipeline"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            ),
        )
    for run in runs:
        until = expiry.get(run.name)
        emit(
            f"{run.name}  waiting since {run.state.timestamp:%Y-%m-%d %H:%M} UTC"
            + (f", environment until {until:%Y-%m-%d %H:%M} UTC" if until else "")
        )
        for line in evidence_lines(settings, run.name):
            emit(line)
        emit(
            f"  decide:   fearless approve {run.name} --by NAME --comment TEXT  (or fearless reject)"
        )
    if not runs:
        emit("no release is waiting for a decision")
    return len(runs)


def evidence_lines(settings, release_id: str) -> list[str]:
    """Where a waiting release's evidence is: the Prefect artifact, the page, the markdown."""
    from fearless.evidence import evidence_files

    files = evidence_files(settings.paths.run_dir(release_id))
    lines = [f"  evidence: {settings.ui_url}/artifacts/key/evidence-{release_id}"]
    for path in (files.html, files.markdown):
        lines.append(f"            {path}" + ("" if path.is_file() else "  (not written)"))
    return lines


def status(
    run_id: Annotated[
        str | None, typer.Argument(help="A release; all recent ones if omitted.")
    ] = None,
) -> None:
    """Releases and their states, and what serves in production."""
    from fearless.settings import get_settings

    print_status(get_settings(), run_id, typer.echo)


def pending() -> None:
    """Releases waiting at their approval gate, with where their evidence is."""
    from fearless.settings import get_settings

    print_pending(get_settings(), typer.echo)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(pending)
