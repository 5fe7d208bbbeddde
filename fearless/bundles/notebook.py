"""From a fitted model and a sample of its data to a model project and a bundle, in one call.

`bundle_model` is what a notebook calls (`fearless.bundle_model(model, frame, name="credit")`);
`fearless init` does the same from files. The schema is read off the frame, the model is saved
with skops (so loading it needs no trust in pickle), the frame is kept as reference data.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import yaml

from fearless.bundles.bundle import Bundle, BundleError, build_bundle, check_model_predicts
from fearless.spec import (
    DEFAULT_RATE,
    SPEC_FILENAME,
    Column,
    ColumnType,
    ModelSpec,
    SpecError,
    with_overrides,
)

MODEL_FILE = "model.skops"
REFERENCE_FILE = "reference.parquet"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def infer_schema(frame) -> list[Column]:
    """One column per frame column: bool, int, float, or category with the values seen;
    nullable where a value is missing."""
    from pandas.api import types as pdt

    columns = []
    for name in frame.columns:
        series = frame[name]
        if not isinstance(name, str):
            raise BundleError(f"column {name!r}: column names must be strings")
        values = None
        if pdt.is_bool_dtype(series):
            kind = ColumnType.bool
        elif pdt.is_integer_dtype(series):
            kind = ColumnType.int
        elif pdt.is_float_dtype(series):
            kind = ColumnType.float
        elif isinstance(series.dtype, __import__("pandas").CategoricalDtype):
            kind, values = ColumnType.category, [str(v) for v in series.cat.categories]
        elif pdt.is_object_dtype(series) or pdt.is_string_dtype(series):
            seen = series.dropna()
            odd = sorted({type(v).__name__ for v in seen if not isinstance(v, str)})
            if odd:
                raise BundleError(
                    f"column {name!r} mixes text with {', '.join(odd)} values; "
                    "convert it to one type (str for a category) first"
                )
            kind, values = ColumnType.category, sorted(seen.unique().tolist())
        else:
            raise BundleError(
                f"column {name!r} is {series.dtype}; a schema column is int, float, bool or "
                "category: convert or drop it"
            )
        columns.append(
            Column(name=name, type=kind, nullable=bool(series.isna().any()), values=values)
        )
    return columns


def save_skops(model, path: Path, trusted_types: list[str] | tuple[str, ...] = ()) -> None:
    """Save with skops, byte for byte the same for the same model: skops names arrays and
    objects by `id()` and stamps the time, so ids are renumbered in order of appearance and
    the zip is rewritten with a fixed time. The file must load back with the default trusted
    types and `trusted_types` (the spec's)."""
    import skops.io as sio

    from fearless.bundles.model_files import ModelFileError, load_model_file

    with zipfile.ZipFile(io.BytesIO(sio.dumps(model))) as src:
        names = set(src.namelist()) - {"schema.json"}
        schema = json.loads(src.read("schema.json"))
        ids: dict[Any, int] = {}
        files: dict[str, str] = {}

        def renumber(node: Any) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, value in list(items):
                if key == "__id__" and isinstance(node, dict):
                    node[key] = ids.setdefault(value, len(ids) + 1)
                elif key == "file" and isinstance(value, str) and value in names:
                    node[key] = files.setdefault(value, f"{len(files) + 1}{Path(value).suffix}")
                elif isinstance(value, (dict, list)):
                    renumber(value)

        renumber(schema)
        for leftover in sorted(names - set(files)):
            files[leftover] = leftover
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr(_entry("schema.json"), json.dumps(schema, indent=2))
            for old, new in files.items():
                out.writestr(_entry(new), src.read(old))
    try:
        load_model_file(path, trust_pickle=False, trusted_types=trusted_types)
    except ModelFileError as exc:
        raise BundleError(f"the model cannot be kept as a safe skops file: {exc}") from exc


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def write_project(
    model,
    frame,
    into: Path | str,
    *,
    name: str,
    target: str | None = None,
    model_file: Path | None = None,
    overwrite: bool = False,
    **spec_fields: Any,
) -> Path:
    """Write `fearless.yaml`, the model (skops) and the reference data into `into`; returns
    the spec's path. `model_file`, a `.skops` file, is copied as is instead of re-saved."""
    import pandas as pd

    into = Path(into)
    if not isinstance(frame, pd.DataFrame):
        raise BundleError(f"expected a pandas DataFrame of sample data, got {type(frame).__name__}")
    if frame.empty:
        raise BundleError("the sample data has no rows: the schema and reference need some")
    if target is not None:
        if target not in frame.columns:
            raise BundleError(
                f"target column {target!r} is not in the data (columns: {list(frame.columns)})"
            )
        frame = frame.drop(columns=[target])
    if frame.columns.empty:
        raise BundleError("the sample data has no feature columns")
    spec_path = into / SPEC_FILENAME
    if spec_path.exists() and not overwrite:
        raise BundleError(f"{spec_path} already exists; overwrite it explicitly (--force)")
    schema = infer_schema(frame)
    check_model_predicts(model, frame, Path(f"model for {name!r}"))
    # A project starts with a rate a laptop holds with headroom, stated so it is seen and set.
    base = {
        "name": name, "model": MODEL_FILE, "reference_data": REFERENCE_FILE, "schema": [],
        "load": {"rate": DEFAULT_RATE},
    }  # fmt: skip
    try:
        spec = ModelSpec.model_validate({**base, "schema": [c.model_dump() for c in schema]})
        spec = with_overrides(spec, spec_fields, str(spec_path))
    except SpecError as exc:
        raise BundleError(str(exc)) from None
    except ValueError as exc:
        raise BundleError(f"{spec_path}: invalid model spec: {exc}") from None

    into.mkdir(parents=True, exist_ok=True)
    if model_file is not None and model_file.suffix == ".skops":
        shutil.copyfile(model_file, into / MODEL_FILE)
    else:
        save_skops(model, into / MODEL_FILE, trusted_types=spec.trusted_types)
    frame.reset_index(drop=True).to_parquet(into / REFERENCE_FILE, index=False)
    spec_path.write_text(yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False))
    return spec_path


def bundle_model(
    model,
    sample_frame,
    name: str,
    target: str | None = None,
    *,
    project_dir: Path | str | None = None,
    registry,
    **spec_fields: Any,
) -> Bundle:
    """Make a model project of a fitted model and a sample of its data (in `project_dir`,
    default `./<name>`), build its bundle into `registry`, print and return it.

    Running it again with the same model and data gives the same digest (and reuses the bundle).
    """
    project = Path(project_dir if project_dir is not None else name)
    write_project(
        model, sample_frame, project, name=name, target=target, overwrite=True, **spec_fields
    )
    bundle = build_bundle(project, registry, trust_pickle=False)
    print(f"bundled {bundle.name} {bundle.digest}\n  project: {project}\n  bundle:  {bundle.path}")
    return bundle
