"""`fearless doctor --aws`: the smoke test a team runs once on its account after `terraform apply`."""

from __future__ import annotations

from typing import Annotated

import typer


def doctor(
    aws: Annotated[
        bool, typer.Option("--aws", help="Check the AWS account of the settings.")
    ] = False,
    model: Annotated[
        str, typer.Option(help="A model served on ECS: its production bundle is what runs.")
    ] = "credit",
    digest: Annotated[
        str | None, typer.Option(help="The bundle to run when the model has no production yet.")
    ] = None,
) -> None:
    """Start a flow-run task, a test environment, a prediction, a teardown, the janitor and a
    promotion on the account, one line per check; everything created is removed."""
    import os

    from fearless.aws import aws_client
    from fearless.composition import build_services
    from fearless.environments.ecs.doctor import AwsDoctor
    from fearless.settings import get_settings

    settings = get_settings()
    if not aws or settings.backend != "aws":
        typer.secho(
            "fearless doctor checks an AWS account: pass --aws, with FEARLESS_BACKEND=aws", err=True
        )
        raise typer.Exit(2)
    services = build_services(settings)
    current = services.production.current(model)
    found = digest or (current.digest if current else None)
    if found is None:
        typer.secho(f"{model} has no production on ECS: name a bundle with --digest", err=True)
        raise typer.Exit(2)
    logs = aws_client(settings, "logs")
    checks = AwsDoctor(
        environments=services.environments,
        production=services.production if current else None,
        logs=logs,
        bundle=services.registry.get_bundle(model, found),
        start_flow_run=_janitor_flow_run,
        flow_log_group=settings.aws_log_group,
        secrets=tuple(v for v in (os.environ.get("PREFECT_API_AUTH_STRING"),) if v),
    )
    if any(r.status == "FAIL" for r in checks.run(typer.echo)):
        raise typer.Exit(1)


def _janitor_flow_run() -> str:
    """A dry run of the janitor's deployment on the work pool, waited for; its flow run id."""
    from prefect.deployments import run_deployment

    run = run_deployment("janitor/janitor", parameters={"dry_run": True}, timeout=900)
    if not run.state or not run.state.is_completed():
        raise RuntimeError(f"janitor flow run {run.id} ended {run.state and run.state.name}")
    return str(run.id)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
