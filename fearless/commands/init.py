"""`fearless init PATH --model FILE --data FILE`: a fitted model and its data as a model project
(or `--from-mlflow models:/NAME@ALIAS`: a model registered in MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def init(
    path: Annotated[Path, typer.Argument(help="Folder to write the model project into.")],
    model: Annotated[
        Path | None, typer.Option(help="Fitted model: .skops, or .joblib/.pkl.")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Sample of the model's data: .parquet or .csv (with --from-mlflow: "
            "default, the run's logged reference data)."
        ),
    ] = None,
    from_mlflow: Annotated[
        str | None,
        typer.Option(
            "--from-mlflow",
            help="A registered MLflow model, models:/NAME@ALIAS or models:/NAME/VERSION: the "
            "spec names it, the schema comes from its signature.",
        ),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow tracking server (default: MLFLOW_TRACKING_URI); kept in the spec."
        ),
    ] = None,
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

    if (model is None) == (from_mlflow is None) or (model is not None and data is None):
        typer.secho(
            "give --model FILE --data FILE, or --from-mlflow models:/NAME@ALIAS [--data FILE]",
            fg=typer.colors.RED, err=True,
        )  # fmt: skip
        raise typer.Exit(2)
    if from_mlflow is not None:
        from fearless.bundles.mlflow_project import write_mlflow_project

        try:
            spec_path = write_mlflow_project(
                from_mlflow, path, name=name or path.resolve().name, data=data,
                tracking_uri=tracking_uri, trust_pickle=trust_pickle,
                trusted_types=trust_type or [], overwrite=force,
            )  # fmt: skip
            bundle = build_bundle(path, build_services().registry, trust_pickle=trust_pickle)
        except (BundleError, ModelFileError, ValueError) as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        typer.echo(f"wrote {spec_path}\nbundled {bundle.name} {bundle.digest}")
        return
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
