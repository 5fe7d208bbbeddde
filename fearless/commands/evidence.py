"""`fearless evidence RUN_ID`: where a release's evidence is, and opening it."""

from __future__ import annotations

from typing import Annotated

import typer


def evidence(
    run_id: Annotated[str, typer.Argument(help="Release id.")],
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the HTML page in a web browser.")
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(help="Render the page again from evidence.json, with the simulations since."),
    ] = False,
) -> None:
    """Print the paths of the release's evidence page (HTML, with charts) and its markdown."""
    import webbrowser

    from fearless.evidence import EvidenceError, find_evidence, rebuild_evidence
    from fearless.settings import get_settings

    runs = get_settings().paths.runs
    try:
        files = find_evidence(runs, run_id)
        if rebuild:
            files = rebuild_evidence(runs / run_id)
    except EvidenceError as exc:
        typer.secho(f"evidence {run_id}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    page = files.html if files.html.is_file() else None
    if page:
        typer.echo(page)
    elif files.json.is_file():
        typer.echo(f"(no HTML page yet: fearless evidence {run_id} --rebuild)")
    else:
        typer.echo("(no HTML page: this run's evidence was written before there was one)")
    typer.echo(files.markdown)
    if open_page:
        webbrowser.open((page or files.markdown).resolve().as_uri())


def register(app: typer.Typer) -> None:
    app.command("evidence")(evidence)
