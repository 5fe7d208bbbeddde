"""What `fearless status` shows: recent releases and the production services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer


def print_status(address, run_id: str | None, emit: Callable[[str], None]) -> None:
    """Releases and what serves in production, from the Prefect server alone (two or three
    REST calls): nothing of the worker's files, no cloud credentials."""
    from fearless.commands._reading import prefect_api
    from fearless.production.board import read_board
    from fearless.release.listing import find_release, recent_releases

    with prefect_api(address) as api:
        runs = [find_release(api, run_id)] if run_id else recent_releases(api)
        serving = read_board(api)
    emit("releases:" if runs else "releases: none yet")
    holders = {slot: run.name for run in runs if (slot := run.tagged("holds:"))}
    for run in runs:
        emit(release_line(run, holders))
    emit("production:" if serving else "production: nothing promoted yet")
    for record in serving:
        since = f"{record.since:%Y-%m-%d %H:%M} UTC"
        emit(f"  {record.model:<24} {record.digest[:19]}  {record.url}  (since {since})")


def release_line(run, holders: dict[str, str]) -> str:
    """One release: its state, its message, and the slot it waits for (behind whom)."""
    message = f"  {run.message}" if run.message else ""
    if slot := run.tagged("waiting:"):
        behind = f" behind {holders[slot]}" if slot in holders else ""
        message += f"  waiting for the {slot} slot{behind}"
    return f"  {run.name:<24} {run.state_name or '?':<12}{message}"


def print_pending(address, emit: Callable[[str], None], reports=None) -> int:
    """Releases waiting for a decision, with their evidence and when the gate times out."""
    from fearless.commands._reading import prefect_api, report_links
    from fearless.release.listing import waiting_releases

    with prefect_api(address) as api:
        runs = waiting_releases(api)
    if runs and reports is None:
        reports = report_links(address)
    for run in runs:
        until = f", decide by {run.decide_by:%Y-%m-%d %H:%M} UTC" if run.decide_by else ""
        emit(f"{run.name}  waiting since {run.since:%Y-%m-%d %H:%M} UTC{until}")
        for line in evidence_lines(address, run.name, reports):
            emit(line)
        emit(
            f"  decide:   fearless approve {run.name} --by NAME --comment TEXT  (or fearless reject)"
        )
    if not runs:
        emit("no release is waiting for a decision")
    return len(runs)


def evidence_lines(address, release_id: str, reports) -> list[str]:
    """Where a waiting release's evidence is: its page over HTTP, and the Prefect artifact."""
    return [
        f"  evidence: {reports.url(release_id, 'evidence.html').describe()}",
        f"            {address.ui_url}/artifacts/key/evidence-{release_id}",
    ]


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _asking_the_server(read: Callable[[object], object]) -> None:
    from fearless.commands._reading import server_address

    address = server_address()
    try:
        read(address)
    except LookupError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"could not ask the Prefect server at {address.api_url}: {exc}")


def status(
    run_id: Annotated[
        str | None, typer.Argument(help="A release; all recent ones if omitted.")
    ] = None,
) -> None:
    """Releases and their states, and what serves in production."""
    _asking_the_server(lambda address: print_status(address, run_id, typer.echo))


def pending() -> None:
    """Releases waiting at their approval gate, with the links to their evidence."""
    _asking_the_server(lambda address: print_pending(address, typer.echo))


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(pending)
