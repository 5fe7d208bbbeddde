"""What `fearless status` shows: recent releases and the production services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
        waiting_in = {run.pool for run in runs if run.state_type == "SCHEDULED" and run.pool}
        pools = {pool: pool_load(api, pool) for pool in sorted(waiting_in)}
        serving = read_board(api)
    emit("releases:" if runs else "releases: none yet")
    holders = {slot: run.name for run in runs if (slot := run.tagged("holds:"))}
    for run in runs:
        emit(release_line(run, holders, pools.get(run.pool)))
    emit("production:" if serving else "production: nothing promoted yet")
    for record in serving:
        since = f"{record.since:%Y-%m-%d %H:%M} UTC"
        emit(f"  {record.model:<24} {record.digest[:19]}  {record.url}  (since {since})")


@dataclass(frozen=True)
class PoolLoad:
    """A work pool's concurrency limit (None: none) and the flow runs that hold it now."""

    name: str
    limit: int | None
    running: list[str]

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.running) >= self.limit


TAKING_A_SLOT = ["PENDING", "RUNNING", "CANCELLING"]  # what Prefect counts against a pool's limit


def pool_load(api, pool: str) -> PoolLoad:
    """Two REST calls: the pool's limit, and its flow runs counted against it."""
    limit = api.get(f"work_pools/{pool}").get("concurrency_limit")
    body = {
        "work_pools": {"name": {"any_": [pool]}},
        "flow_runs": {"state": {"type": {"any_": TAKING_A_SLOT}}},
        "limit": 200,
    }
    return PoolLoad(pool, limit, sorted(run["name"] for run in api.query("flow_runs/filter", body)))


def why_waiting(run, pool: PoolLoad | None) -> str:
    """Why a release sits Scheduled (or Late) in its queue: its pool is full, or no worker
    has taken it yet."""
    if pool is not None and pool.full:
        return (
            f"waiting: pool {pool.name} runs {pool.limit} at once, all taken "
            f"({', '.join(pool.running)})"
        )
    return f"waiting for a worker to take it from queue {run.queue or '?'}"


def release_line(run, holders: dict[str, str], pool: PoolLoad | None = None) -> str:
    """One release: its state, its message, and what it waits for (a pool slot, a worker,
    the host's load-test slot behind whom)."""
    message = f"  {run.message}" if run.message else ""
    if run.state_type == "SCHEDULED":
        message += f"  {why_waiting(run, pool)}"
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
