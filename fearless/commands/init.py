"""`fearless init PATH --model FILE --data FILE`: a fitted model and its data as a model project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init(
    path: Annotated[Path, typer.Argument(help="Folder to write the model project into.")],
    model: Annotated[Path, typer.Option(help="Fitted model: .skops, or .joblib/.pkl.")],
    data: Annotated[Path, typer.Option(help="Sample of the model's data: .parquet or .csv.")],
    name: Annotated[
        str | None, typer.Option(help="Model name (default: the folder's name).")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Label column in the data, left out of the schema.")
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Load a pickle/joblib model (it can run code).")
    ] = False,
    trust_type: Annotated[
        list[str] | None,
        typer.Option(
            "--trust-type",
            help="A type or function the .skops model may name beyond the defaults (repeat it); "
            "kept in the spec's trusted_types.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing spec.")] = False,
) -> None:
    """Write fearless.yaml (schema inferred from the data), model.skops and reference data,
    then build the bundle and print its digest."""
    from fearless.bundles.bundle import BundleError, build_bundle
    from fearless.bundles.model_files import ModelFileError, load_model_file
    from fearless.bundles.notebook import write_project
    from fearless.composition import build_services

    try:
        trusted_types = trust_type or []
        fitted = load_model_file(model, trust_pickle=trust_pickle, trusted_types=trusted_types)
        frame = _read_data(data)
        spec_path = write_project(
            fitted,
            frame,
            path,
            name=name or path.resolve().name,
            target=target,
            model_file=model,
            overwrite=force,
            trusted_types=trusted_types,
        )
        bundle = build_bundle(path, build_services().registry, trust_pickle=False)
    except (BundleError, ModelFileError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {spec_path}\nbundled {bundle.name} {bundle.digest}")


def _read_data(path: Path):
    import pandas as pd

    from fearless.bundles.bundle import BundleError

    if not path.is_file():
        raise BundleError(f"{path}: data file not found")
    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the data as .csv or .parquet: {exc}") from exc


def register(app: typer.Typer) -> None:
    app.command()(init)
