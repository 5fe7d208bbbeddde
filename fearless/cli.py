"""The `fearless` command line: one command per job.

Only Typer is imported at start, so `fearless --help` is instant; Prefect, Evidently and
Locust are imported inside the commands that use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fearless.commands import plain_values_without_pydantic, register_all

plain_values_without_pydantic()

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Take a model from a git push to production without fear.",
)
server_app = typer.Typer(
    no_args_is_help=True, rich_markup_mode=None, help="The embedded Prefect server and worker."
)
app.add_typer(server_app, name="server")


def _settings():
    from fearless.platform.prefect_env import use_server
    from fearless.settings import get_settings

    settings = get_settings()
    use_server(settings)
    return settings


# Commands that only read the server or the registry: they import neither Prefect nor the
# settings model, and find the server themselves (fearless.commands._reading), so they answer
# in a fraction of a second.
READERS = {"status", "pending", "models", "evidence"}


@app.callback()
def _use_the_configured_server(ctx: typer.Context) -> None:
    """Before any command: Prefect reads its settings once, when first imported, and a client
    with no API URL quietly starts a throwaway server of its own (seconds, and not ours)."""
    if ctx.invoked_subcommand not in READERS:
        _settings()


def _fail(message: str, code: int = 1):
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@server_app.command("up")
def server_up(
    database: Annotated[
        str | None,
        typer.Option(help="sqlite (the default) or postgres: a PostgreSQL run from the state dir."),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Workers to run (default 1).")] = None,
    max_running: Annotated[
        int | None,
        typer.Option(help="Flow runs the pool runs at once; the rest wait Scheduled. 0: no limit."),
    ] = None,
) -> None:
    """Start the local Prefect server and its workers (no-op for what already runs)."""
    from pydantic import ValidationError

    from fearless.platform.server import server_up as up
    from fearless.settings import Settings

    settings = _settings()
    given = {"database": database, "workers": workers, "pool_concurrency": max_running}
    try:
        settings = Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        _fail(f"fearless server up: {exc}", code=2)
    for key, value in up(settings).items():
        typer.echo(f"{key:>17}: {value}")


@server_app.command("down")
def server_down() -> None:
    """Stop the worker, the server and every local model API Fearless started."""
    from fearless.composition import build_services
    from fearless.platform.server import server_down as down

    settings = _settings()
    stopped = down(settings, build_services(settings))
    typer.echo("stopped: " + (", ".join(stopped) or "nothing was running"))


@server_app.command("status")
def server_status() -> None:
    """Show whether the server and worker are up, and where."""
    from fearless.platform.server import server_status as status

    for key, value in status(_settings()).items():
        typer.echo(f"{key:>17}: {value}")


@app.command()
def deploy() -> None:
    """Apply prefect.yaml and the automations to the server (safe to repeat)."""
    from fearless.platform.deploy import deploy as apply

    typer.echo("deployed: " + ", ".join(apply(_settings())))


@app.command()
def release(
    path: Annotated[str, typer.Argument(help="Model project folder or its fearless.yaml.")],
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a spec field: load.duration_s=5")
    ] = [],  # noqa: B006
    ref: Annotated[str | None, typer.Option(help="Git ref being released.")] = None,
    follow: Annotated[bool, typer.Option(help="Print each step until approval or the end.")] = True,
) -> None:
    """Start a release of a model project on a work queue of its own."""
    from pathlib import Path

    from fearless.bundles.source import SourceError
    from fearless.composition import build_services
    from fearless.release.runs import start_release
    from fearless.spec import SpecError, overrides_from_pairs

    settings = _settings()
    try:
        started = start_release(
            settings,
            build_services(settings).registry,
            str(Path(path).resolve()),
            overrides=overrides_from_pairs(set_),
            git_ref=ref,
            started_by="cli",
        )
    except (SpecError, SourceError) as exc:
        _fail(str(exc), code=2)
    typer.echo(f"release {started.release_id} on queue {started.queue}\n  {started.url}")
    typer.echo(f"  source: {started.source.describe()}")
    if follow:
        _follow(started.flow_run_id, stop_when_paused=True)


def _follow(flow_run_id: str, stop_when_paused: bool) -> None:
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from fearless.release.runs import follow

    with get_client(sync_client=True) as client:
        run = follow(client, UUID(flow_run_id), typer.echo, stop_when_paused=stop_when_paused)
    if run.state.is_paused():
        typer.echo(f"waiting for approval: fearless approve {run.name} --by NAME --comment TEXT")
    elif not run.state.is_completed():
        _fail(f"release {run.name} ended {run.state.name}: {run.state.message}", code=3)


KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        envvar="FEARLESS_APPROVAL_KEY",
        help="SSH key to sign the decision with (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa); "
        "a decision is signed where the platform requires it, or whenever a key is given.",
    ),
]


def _decide(
    run_id: str, approve: bool, by: str, comment: str, wait: bool, key: Path | None
) -> None:
    from prefect.client.orchestration import get_client

    from fearless.release.approval_gate import await_verdict
    from fearless.release.runs import decide
    from fearless.release.signing import SigningError

    _settings()
    with get_client(sync_client=True) as client:
        try:
            run = decide(client, run_id, approve=approve, approver=by, comment=comment, key=key)
        except (LookupError, RuntimeError, SigningError) as exc:
            _fail(str(exc))
        typer.echo(f"sent: {'approve' if approve else 'reject'} {run.name} as {by}")
        verdict = await_verdict(client, run)
    if verdict is None:
        typer.echo(f"the release has not checked it yet: fearless status {run.name} shows when")
    elif not verdict.accepted:
        _fail(f"refused by the release, which still waits for a decision: {verdict.note}")
    else:
        typer.echo(f"{'approved' if approve else 'rejected'} {run.name} as {by}: {verdict.note}")
    if wait:
        _follow(str(run.id), stop_when_paused=False)


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="Release id (or flow run id).")],
    by: Annotated[str, typer.Option("--by", help="Who decides (your name in allowed_signers).")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    reject: Annotated[bool, typer.Option("--reject", help="Reject instead of approving.")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the run to its end.")] = False,
    key: KeyOption = None,
) -> None:
    """Approve (or --reject) a release waiting at its approval gate."""
    _decide(run_id, not reject, by, comment, wait, key)


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(help="Release id (or flow run id).")],
    by: Annotated[str, typer.Option("--by", help="Who decides (your name in allowed_signers).")],
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    wait: Annotated[bool, typer.Option(help="Follow the run to its end.")] = False,
    key: KeyOption = None,
) -> None:
    """Reject a release waiting at its approval gate."""
    _decide(run_id, False, by, comment, wait, key)


@app.command()
def teardown(run_id: Annotated[str, typer.Argument(help="Release id.")]) -> None:
    """Remove everything a release created (environments, queue); safe to repeat."""
    from fearless.composition import build_services
    from fearless.ids import InvalidId
    from fearless.release.runs import finish_release

    try:
        removed = finish_release(build_services(_settings()), run_id)
    except InvalidId as exc:
        _fail(str(exc), code=2)
    typer.echo("removed: " + (", ".join(removed) or "nothing left"))


@app.command()
def rollback(
    model: Annotated[str, typer.Argument(help="Model name, as in its fearless.yaml.")],
    by: Annotated[str, typer.Option("--by", help="Who rolls back.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Put a model's previous version back in production (holding the model's promotion
    slot, like a promotion and its bake window do)."""
    from fearless.composition import build_services
    from fearless.production.promotion import RollbackError
    from fearless.production.promotion import rollback as roll_back
    from fearless.production.slot import promotion_slot

    services = build_services(_settings())
    try:
        with promotion_slot(model):
            result = roll_back(
                model, services.registry, services.production, actor=by, reason=reason
            )
    except RollbackError as exc:
        _fail(str(exc))
    typer.echo(f"{model} production is back at {result.digest}, serving at {result.url}")
    from fearless.release.notifications import notifier_from, rollback_notice

    notifier_from(services.settings).send(
        rollback_notice(model, result.digest, by=by, reason=reason)
    )


@app.command()
def janitor(dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list.")] = False) -> None:
    """Remove test environments past their expiry (--dry-run: only list them)."""
    from fearless.composition import build_services
    from fearless.environments.janitor import sweep

    removed = sweep(build_services(_settings()).environments, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for env in removed:
        typer.echo(
            f"{verb} {env.release_id}/{env.role} (expired {env.expires_at:%Y-%m-%d %H:%M} UTC)"
        )
    if not removed:
        typer.echo("nothing expired")


register_all(app)

if __name__ == "__main__":
    app()
