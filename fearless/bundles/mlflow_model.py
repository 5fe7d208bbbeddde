"""Models registered in MLflow: a spec's `model: models:/credit@candidate` (or `models:/credit/3`).

The build asks the MLflow registry which version the URI names, downloads that version's
files and takes its model file through Fearless's own loader, under the same trust rules as
a file in the project: a `.skops` file only when every type it names is trusted by Fearless's
list or the spec's `trusted_types`, a pickle only with `FEARLESS_TRUST_PICKLE`. MLflow's own
`mlflow.sklearn.load_model` is not used: it unpickles a pickle or cloudpickle model without
asking, and loads a skops model trusting whatever types the model's own MLmodel file lists
(`skops_trusted_types`), so a crafted model version would decide what code its loading runs.
The bundle then holds that same file, so what was tested is what serves.

The bundle records the URI, version, run id and tracking server beside its git source,
outside its digest. With `mlflow: {promote_alias: champion}` in the spec, promotion moves that
MLflow alias to the released version (rollback, being a promotion of the previous bundle,
moves it back), so the two registries name the same version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fearless.bundles.bundle import BundleError
from fearless.spec import REGISTERED_MODEL_URI

# MLflow's sklearn flavour: serialization format -> the file's suffix Fearless loads it by
SKLEARN_FORMATS = {"skops": ".skops", "pickle": ".pkl", "cloudpickle": ".pkl"}
# MLflow signature types -> schema column types
SIGNATURE_TYPES = {
    "long": "int", "integer": "int", "double": "float", "float": "float",
    "string": "category", "boolean": "bool",
}  # fmt: skip
REFERENCE_SUFFIXES = (".parquet", ".csv")


class MlflowModelError(BundleError):
    """A registered model cannot be used; the message names the URI and what is wrong."""


def is_registered_model(value: str | Path) -> bool:
    return str(value).startswith("models:/")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """(name, version, alias) of `models:/NAME/VERSION` or `models:/NAME@ALIAS`."""
    match = REGISTERED_MODEL_URI.match(uri)
    if match is None:
        raise ValueError(
            f"{uri!r} is not a registered model URI: expected models:/NAME/VERSION "
            "or models:/NAME@ALIAS (e.g. models:/credit@candidate)"
        )
    return match["name"], match["version"], match["alias"]


@dataclass(frozen=True)
class RegisteredModel:
    """One version of a registered model, downloaded: its model file and its MLmodel."""

    model_file: Path
    record: dict[str, Any]
    mlmodel: dict[str, Any]

    @property
    def signature_inputs(self) -> list[dict[str, Any]]:
        inputs = (self.mlmodel.get("signature") or {}).get("inputs")
        return json.loads(inputs) if isinstance(inputs, str) else list(inputs or [])


def _client(tracking_uri: str | None):
    # MLflow retries an unreachable server for minutes by default; a build should say so sooner
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise MlflowModelError(
            "the spec names an MLflow model, and mlflow is not installed: "
            "pip install 'fearless[mlflow]' (or uv sync --extra mlflow)"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri)


def resolve_version(uri: str, tracking_uri: str | None = None):
    """The ModelVersion the URI names now (an alias is read at this moment)."""
    name, version, alias = parse_model_uri(uri)
    client = _client(tracking_uri)
    try:
        if alias is not None:
            return client, client.get_model_version_by_alias(name, alias)
        return client, client.get_model_version(name, version)
    except Exception as exc:
        raise MlflowModelError(
            f"{uri}: not read from the MLflow registry at {client.tracking_uri} "
            f"({type(exc).__name__}: {str(exc)[:300]})"
        ) from exc


def fetch_registered_model(uri: str, into: Path, tracking_uri: str | None = None):
    """Download the version `uri` names into `into` and return it, not loaded: its model file
    is loaded by Fearless's own loader, under the project's trust rules."""
    client, version = resolve_version(uri, tracking_uri)
    import mlflow.artifacts

    name = version.name
    into.mkdir(parents=True, exist_ok=True)
    try:
        # Where the version's files are, asked of this client: MLflow's models:/ download
        # would ask the process's default registry instead of the spec's tracking server.
        location = client.get_model_version_download_uri(name, version.version)
        if location.startswith("models:/"):  # a logged model (MLflow 3): its own location
            location = client.get_logged_model(location.removeprefix("models:/")).artifact_location
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(into), tracking_uri=client.tracking_uri
            )
        )
    except Exception as exc:
        raise MlflowModelError(f"{uri}: cannot download version {version.version}: {exc}") from exc
    mlmodel_file = local / "MLmodel"
    if not mlmodel_file.is_file():
        raise MlflowModelError(f"{uri}: version {version.version} has no MLmodel file")
    mlmodel = yaml.safe_load(mlmodel_file.read_text()) or {}
    flavors = mlmodel.get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if sklearn is None:
        raise MlflowModelError(
            f"{uri}: version {version.version} has the flavours {', '.join(sorted(flavors))}; "
            "Fearless takes the sklearn flavour (its model file loads through Fearless's "
            "trusted loader; other flavours' loaders run the model's own code)"
        )
    fmt = sklearn.get("serialization_format", "cloudpickle")
    if fmt not in SKLEARN_FORMATS:
        raise MlflowModelError(f"{uri}: unknown sklearn serialization format {fmt!r}")
    stored = (local / str(sklearn.get("pickled_model", ""))).resolve()
    if not stored.is_file() or not stored.is_relative_to(local.resolve()):
        raise MlflowModelError(f"{uri}: the model file {sklearn.get('pickled_model')!r} is missing")
    model_file = stored.with_name("model" + SKLEARN_FORMATS[fmt])
    stored.rename(model_file)  # the suffix says which of Fearless's loaders may read it
    record = {
        "uri": uri, "name": name, "version": str(version.version), "run_id": version.run_id,
        "tracking_uri": client.tracking_uri, "flavour": "sklearn", "serialization_format": fmt,
    }  # fmt: skip
    return RegisteredModel(model_file=model_file, record=record, mlmodel=mlmodel)


def schema_from_signature(model: RegisteredModel, reference) -> list[dict[str, Any]]:
    """Schema columns from the model's input signature; a string column's values are the
    ones the reference data holds. A model logged without a signature is refused, named."""
    inputs = model.signature_inputs
    if not inputs:
        raise MlflowModelError(
            f"{model.record['uri']}: logged without an input signature; log it with "
            "signature=mlflow.models.infer_signature(X), or use fearless init --model FILE"
        )
    columns = []
    for field in inputs:
        kind = SIGNATURE_TYPES.get(field.get("type"))
        if "name" not in field or kind is None:
            raise MlflowModelError(
                f"{model.record['uri']}: signature input {field} is not a named column of "
                f"type {', '.join(SIGNATURE_TYPES)}"
            )
        column: dict[str, Any] = {"name": field["name"], "type": kind}
        if field["name"] in reference.columns:
            series = reference[field["name"]]
            if series.isna().any() or field.get("required") is False:
                column["nullable"] = True
            if kind == "category":
                column["values"] = sorted(str(v) for v in series.dropna().unique())
        columns.append(column)
    return columns


def reference_from_run(model: RegisteredModel, into: Path) -> Path:
    """The run's reference data: an artifact named reference.parquet/.csv (else the one data
    file it logged), or else a logged dataset whose source is such a file."""
    import mlflow.artifacts

    client = _client(model.record["tracking_uri"])
    run_id, uri = model.record["run_id"], model.record["uri"]
    if not run_id:
        raise MlflowModelError(f"{uri}: the version has no run to take reference data from")
    files = [a.path for a in client.list_artifacts(run_id) if not a.is_dir]
    data = [p for p in files if p.endswith(REFERENCE_SUFFIXES)]
    named = [p for p in data if Path(p).stem == "reference"]
    chosen = named[:1] or (data if len(data) == 1 else [])
    if chosen:
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=chosen[0], dst_path=str(into),
                tracking_uri=client.tracking_uri,
            )
        )  # fmt: skip
    for dataset_input in client.get_run(run_id).inputs.dataset_inputs:
        source = json.loads(dataset_input.dataset.source or "{}")
        location = source.get("uri") or source.get("url") or source.get("path") or ""
        if location.endswith(REFERENCE_SUFFIXES):
            return Path(
                mlflow.artifacts.download_artifacts(
                    location, dst_path=str(into), tracking_uri=client.tracking_uri
                )
            )
    raise MlflowModelError(
        f"{uri}: run {run_id} logged no reference data (an artifact reference.parquet or "
        f".csv, or a dataset with such a source; found {files or 'no files'}): give --data FILE"
    )


def move_alias(bundle) -> Callable[[], None]:
    """Point the spec's `mlflow.promote_alias` at the MLflow version the bundle was built from;
    return how to put it back. Does nothing when the spec asks for no alias (MLflow is then
    not even imported)."""
    link = bundle.spec.mlflow
    if link is None or link.promote_alias is None:
        return lambda: None
    alias = link.promote_alias
    manifest = json.loads((bundle.path / "manifest.json").read_text())
    record = (manifest.get("source") or {}).get("mlflow")
    if record is None:
        raise MlflowModelError(
            f"{bundle.name} {bundle.digest}: the spec asks to move the MLflow alias {alias!r}, "
            "and this bundle was not built from an MLflow model"
        )
    client = _client(record["tracking_uri"])
    name = record["name"]
    try:
        before = client.get_model_version_by_alias(name, alias).version
    except Exception:  # noqa: BLE001  (no version holds the alias yet)
        before = None
    client.set_registered_model_alias(name, alias, record["version"])

    def undo() -> None:
        if before is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, before)

    return undo
