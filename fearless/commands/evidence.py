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
    """Print the link to the release's evidence page (HTML, with charts), and its files when
    this machine has them; works from any machine that reaches the server (or, on AWS, S3)."""
    from fearless.commands._reading import report_links, server_address
    from fearless.ids import InvalidId, checked_id

    address = server_address()
    try:
        run_dir = address.runs / checked_id(run_id, "release id")
        reports = report_links(address)
        if rebuild:
            _rebuild(run_id, run_dir, reports)
        link = reports.link(run_id, "evidence.html")
    except InvalidId:
        _fail(f"evidence {run_id}: {run_id!r} is not a release id")
    except OSError as exc:
        _fail(
            f"evidence {run_id}: no run {run_id} in {run_dir} here, and the server at "
            f"{address.reports_url} could not be asked: {exc}"
        )
    if link is None:
        _no_page(run_id, run_dir)
    typer.echo(link.describe())
    for name in ("evidence.html", "evidence.md"):
        if (run_dir / name).is_file():
            typer.echo(run_dir / name)
    if open_page:
        import webbrowser

        webbrowser.open(link.url)


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _rebuild(run_id: str, run_dir, reports) -> None:
    """Render the page again on the machine holding the run folder, and publish it."""
    from fearless.evidence import EvidenceError, rebuild_evidence
    from fearless.platform.reports import publishing_links

    try:
        files = rebuild_evidence(run_dir, publishing_links(reports, run_id, run_dir))
    except EvidenceError as exc:
        _fail(f"evidence {run_id}: {exc}")
    reports.publish(run_id, files.html)


def _no_page(run_id: str, run_dir) -> None:
    """Why there is no page: no such run, no evidence yet, or a page to render again."""
    from fearless.evidence import EvidenceError, evidence_files, find_evidence

    try:
        files = find_evidence(run_dir.parent, run_id)
    except EvidenceError as exc:
        _fail(f"evidence {run_id}: {exc}")
    if files.json.is_file():
        typer.echo(f"(no HTML page yet: fearless evidence {run_id} --rebuild)")
    else:
        typer.echo("(no HTML page: this run's evidence was written before there was one)")
    typer.echo(evidence_files(run_dir).markdown)
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    app.command("evidence")(evidence)
