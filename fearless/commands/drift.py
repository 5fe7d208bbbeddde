"""`fearless drift MODEL [--since ...]`: the nightly drift check of one model, by hand."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([hd])$")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`24h`, `2d`, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    if match := RELATIVE.match(text.strip()):
        amount, unit = float(match[1]), match[2]
        return now - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected e.g. 24h, 2d or 2026-01-31T12:00") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def drift(
    model: Annotated[str, typer.Argument(help="A model with a production alias.")],
    since: Annotated[
        str, typer.Option(help="Logs from this time on: 24h, 2d or an ISO date/time (UTC).")
    ] = "24h",
) -> None:
    """Compare MODEL's production traffic since --since with its reference data."""
    from fearless.composition import build_services
    from fearless.drift.nightly import check_production_drift
    from fearless.drift.process import run_drift_subprocess
    from fearless.drift.verdict import DriftError

    services = build_services()
    paths = services.settings.paths

    def run_drift(*args):
        return run_drift_subprocess(*args, launcher=services.launcher)

    try:
        (result,) = check_production_drift(
            services.registry,
            paths.inference_logs,
            paths.root / "drift",
            parse_since(since),
            run_drift,
            models=[model],
        )
    except DriftError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{result.model} {result.digest[:19]}: {result.status} ({result.rows} records)")
    if result.scores is not None:
        for c in result.scores.columns:
            mark = "DRIFTED" if c.drifted else "ok"
            typer.echo(f"  {c.column:<24} {c.method:<14} {c.score:.3f} / {c.threshold:g}  {mark}")
    for line in result.reasons + (result.verdict.notes if result.verdict else []):
        typer.echo(f"  - {line}")
    if result.scores is not None and result.scores.report_html:
        typer.echo(f"report: {result.scores.report_html}")
    raise typer.Exit(0 if result.status == "passed" else 1)


def register(app) -> None:
    app.command("drift")(drift)
