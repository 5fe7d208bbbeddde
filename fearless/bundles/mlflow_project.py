"""`fearless init PATH --from-mlflow models:/credit@candidate`: a model project around a
registered model, its schema from the model's signature and its reference data from the run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

from fearless.bundles.bundle import BundleError, check_frame_matches_schema, check_model_predicts
from fearless.bundles.mlflow_model import (
    fetch_registered_model,
    reference_from_run,
    schema_from_signature,
)
from fearless.bundles.model_files import ModelFileError, load_model_file
from fearless.spec import SPEC_FILENAME, ModelSpec

REFERENCE_FILE = "reference.parquet"


def _read_frame(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise BundleError(f"{path}: cannot read the data as .csv or .parquet: {exc}") from exc


def write_mlflow_project(
    uri: str,
    path: Path,
    *,
    name: str,
    data: Path | None = None,
    tracking_uri: str | None = None,
    trust_pickle: bool = False,
    trusted_types: list[str] | tuple[str, ...] = (),
    overwrite: bool = False,
) -> Path:
    """Write `fearless.yaml` naming `uri` and `reference.parquet` into `path`; the model is
    fetched and loaded once here, under the trust rules a release applies, to check it scores
    the reference data. Returns the spec's path."""
    spec_path = path / SPEC_FILENAME
    if spec_path.exists() and not overwrite:
        raise BundleError(f"{spec_path}: already exists (--force replaces it)")
    with tempfile.TemporaryDirectory(prefix="fearless-mlflow-") as tmp:
        registered = fetch_registered_model(uri, Path(tmp) / "model", tracking_uri)
        try:
            model = load_model_file(
                registered.model_file, trust_pickle=trust_pickle, trusted_types=trusted_types
            )
        except ModelFileError as exc:
            raise BundleError(f"{uri} (version {registered.record['version']}): {exc}") from exc
        source = data if data is not None else reference_from_run(registered, Path(tmp) / "data")
        frame = _read_frame(source)
    columns = schema_from_signature(registered, frame)
    missing = [c["name"] for c in columns if c["name"] not in frame.columns]
    if missing:
        raise BundleError(f"{source}: lacks the signature's columns {missing}")
    frame = frame[[c["name"] for c in columns]]
    spec = ModelSpec.model_validate(
        {
            "name": name, "model": uri, "reference_data": REFERENCE_FILE, "schema": columns,
            "trusted_types": list(trusted_types),
            **({"mlflow": {"tracking_uri": tracking_uri}} if tracking_uri else {}),
        }
    )  # fmt: skip
    check_frame_matches_schema(frame, spec, str(source))
    check_model_predicts(model, frame, Path(uri))
    path.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path / REFERENCE_FILE, index=False)
    spec_path.write_text(yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False))
    return spec_path
