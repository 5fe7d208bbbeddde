"""`fearless trigger`: start a release from CI, follow it, exit with its outcome's code."""

from __future__ import annotations

from typing import Annotated

import typer


def trigger(
    project: Annotated[
        str, typer.Argument(help="Model project folder, relative to the repository root.")
    ],
    ref: Annotated[str | None, typer.Option(help="Git commit or ref being released.")] = None,
    watch: Annotated[
        bool, typer.Option(help="Follow the release to its end (through the approval gate).")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="Give up watching after this many seconds.")
    ] = None,
    set_: Annotated[
        list[str], typer.Option("--set", help="Override a spec field: load.duration_s=5")
    ] = [],  # noqa: B006
) -> None:
    """Start a release on its own queue; with --watch, exit 0 only when it was promoted.

    Exit codes: 0 promoted, 1 error, 10 rejected, 11 approval timed out, 12 load-test gate
    failed, 13 drift gate failed, 14 inconclusive load test, 15 cancelled, 16 watch timed out,
    17 rolled back by the bake window, 18 bake failed with nothing to roll back to.
    A summary goes to $GITHUB_STEP_SUMMARY when that is set: the approval notice (gate
    figures, drift, the champion comparison, the two commands) while the release waits,
    and its outcome at the end.
    """
    import os
    from uuid import UUID

    from prefect.client.orchestration import get_client

    from fearless.bundles.source import SourceError
    from fearless.composition import build_services
    from fearless.release.outcomes import EXIT_CODES, Outcome, outcome_of
    from fearless.release.runs import follow, start_release
    from fearless.settings import get_settings
    from fearless.spec import SpecError, overrides_from_pairs

    settings = get_settings()  # the CLI's callback already pointed Prefect at its server
    try:
        overrides = overrides_from_pairs(set_)
        started = start_release(
            settings,
            build_services(settings).registry,
            project,
            overrides=overrides,
            git_ref=ref,
            started_by="ci",
        )
    except (SpecError, SourceError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_CODES[Outcome.error]) from None
    typer.echo(
        f"release {started.release_id} ({project} at {ref or 'working tree'})\n  {started.url}"
        f"\n  source: {started.source.describe()}"
    )
    if not watch:
        return
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    with get_client(sync_client=True) as client:

        def waiting(run) -> None:
            """The approval notice in the job's summary while the release waits for it."""
            from fearless.release.notifications import read_summary

            notice = read_summary(client, started.release_id)
            if summary and notice:
                with open(summary, "a") as handle:
                    handle.write(
                        f"### Fearless release `{started.release_id}` waits for approval\n\n"
                        f"{notice}\n- run: {started.url}\n\n"
                    )

        try:
            run = follow(
                client,
                UUID(started.flow_run_id),
                typer.echo,
                poll_s=2,
                stop_when_paused=False,
                timeout_s=timeout,
                on_paused=waiting,
            )
            outcome = outcome_of(run.state.type.value, run.state.name, run.state.message)
            detail = run.state.message or run.state.name
        except TimeoutError as exc:
            outcome, detail = Outcome.watch_timeout, str(exc)
    typer.echo(f"outcome: {outcome.value} ({detail})")
    if summary:
        with open(summary, "a") as handle:
            handle.write(
                f"### Fearless release `{started.release_id}`: {outcome.value}\n\n"
                f"- project: `{project}` at `{ref or 'working tree'}`\n- {detail}\n"
                f"- source: {started.source.describe()}\n"
                f"- run: {started.url}\n"
            )
    raise typer.Exit(EXIT_CODES[outcome])


def register(app: typer.Typer) -> None:
    app.command()(trigger)
