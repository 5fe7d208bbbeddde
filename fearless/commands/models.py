"""`fearless models`: every model in the registry, its aliases and the digests they point at."""

from __future__ import annotations

from typing import Annotated

import typer

ALIASES = ("production", "previous", "candidate")


def model_rows(registry) -> list[tuple[str, str, str, str]]:
    """(model, alias, digest, last move) per set alias, `-` for a model with none; only the
    Registry protocol is used, so every registry backend lists the same way."""
    rows = []
    for model in registry.models():
        history = registry.history(model)
        last = {move.alias: move for move in history}
        names = [*ALIASES, *sorted({m.alias for m in history} - set(ALIASES))]
        set_ = [(a, d) for a in names if (d := registry.get_alias(model, a)) is not None]
        for alias, digest in set_:
            move = last.get(alias)
            when = f"{move.at:%Y-%m-%d %H:%M} by {move.actor}" if move else ""
            rows.append((model, alias, digest, when))
        if not set_:
            rows.append((model, "-", "-", ""))
    return rows


def models(
    full: Annotated[bool, typer.Option("--full", help="Show whole digests.")] = False,
) -> None:
    """List the registry's models, their aliases (production, previous, candidate, ...) and
    the digests those point at."""
    rows = model_rows(_registry())
    if not rows:
        typer.echo("no models in the registry yet: build one with `fearless init` or a release")
        return
    short = [(m, a, d if full else d.removeprefix("sha256:")[:12], w) for m, a, d, w in rows]
    table = [("MODEL", "ALIAS", "DIGEST", "SINCE"), *short]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[3]]).rstrip())


def _registry():
    """The local registry, found from the environment alone; on AWS, S3's, from the settings."""
    from fearless.commands._reading import server_address

    address = server_address()
    if address.backend == "local":
        from fearless.registry.local import LocalRegistry

        return LocalRegistry(address.registry)
    from fearless.composition import build_registry
    from fearless.settings import get_settings

    return build_registry(get_settings())


def register(app: typer.Typer) -> None:
    app.command()(models)
