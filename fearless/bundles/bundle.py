"""Content-addressed model bundles: the one artifact every later step tests and ships.

A bundle is a folder: the model file, the spec (paths rewritten to the bundle), the input
schema, reference data and its statistics, the requirements it was built with, and a
container image spec. Its digest is sha256 over a canonical manifest of those files, so the
same inputs always give the same digest, and what was tested is provably what ships.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from fearless.bundles import integrity
from fearless.spec import SPEC_FILENAME, ColumnType, ModelSpec, SpecError, load_spec, spec_path_of

MANIFEST = "manifest.json"
# What the model API imports when it serves a bundle: pinned in the bundle's requirements.txt.
RUNTIME_PACKAGES = (
    *("scikit-learn", "numpy", "pandas", "scipy", "joblib", "skops", "pyarrow"),
    *("fastapi", "uvicorn", "pydantic", "pyyaml", "orjson", "prometheus-client", "psutil"),
    *("httptools", "uvloop"),  # uvicorn's C parser and loop: without, h11 and several times slower
    "httpx",  # the shadow's forwarding client
    *("pydantic-settings", "boto3"),  # shipping the inference log to S3, as on ECS
    *("onnxruntime", "skl2onnx", "protobuf"),  # tree models' fast path, where installed
)
# Libraries a model's own estimators may come from (the boosters extra): pinned only in the
# bundles of models that hold one, by whichever of their distributions is installed.
MODEL_LIBRARIES = {"xgboost": ("xgboost-cpu", "xgboost"), "lightgbm": ("lightgbm",)}


class BundleError(ValueError):
    """The inputs of a bundle are unusable; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle on local disk."""

    path: Path
    digest: str
    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def short_digest(self) -> str:
        return self.digest.removeprefix("sha256:")[:12]

    @property
    def model_path(self) -> Path:
        return self.path / self.spec.model

    @property
    def reference_path(self) -> Path:
        return self.path / self.spec.reference_data

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILENAME


def open_bundle(path: Path | str, digest: str | None = None) -> Bundle:
    """Open a bundle folder written by `stage_bundle`, once its files are checked against its
    manifest (see `fearless.bundles.integrity`) and, when given, its digest is `digest`; a
    BundleError names what differs."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise BundleError(f"{path}: not a bundle (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_file.read_text())
    except ValueError as exc:
        raise BundleError(f"{manifest_file}: not a readable manifest ({exc})") from None
    problem = integrity.manifest_problem(manifest)
    asked = None if digest is None else "sha256:" + digest.removeprefix("sha256:")
    if problem is None and asked is not None and manifest["digest"] != asked:
        problem = f"the bundle's digest is {manifest['digest']}, not {digest} as asked"
    if problem is not None:
        raise BundleError(f"{manifest_file}: {problem}; refusing the bundle")
    problem = integrity.content_problem(path, manifest, MANIFEST)
    if problem is not None:
        raise BundleError(f"{problem}; refusing the bundle")
    return Bundle(path=path, digest=manifest["digest"], spec=load_spec(path / SPEC_FILENAME))


def read_reference(spec: ModelSpec, path: Path):
    """Reference data as a DataFrame, checked against the spec's input schema."""
    import pandas as pd

    if not path.is_file():
        raise BundleError(f"{path}: reference data file not found (spec field 'reference_data')")
    try:
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise BundleError(f"{path}: cannot read reference data: {exc}") from exc
    check_frame_matches_schema(frame, spec, str(path))
    return frame


def check_frame_matches_schema(frame, spec: ModelSpec, source: str) -> None:
    """Fail with the column names when a frame's columns or types disagree with the schema."""
    import pandas as pd
    from pandas.api import types as pdt

    expected = spec.column_names
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"columns not in the schema {extra}")
    for column in spec.input_schema:
        if column.name not in frame.columns:
            continue
        series = frame[column.name]
        if series.isna().any() and not column.nullable:
            problems.append(f"column {column.name!r} has missing values but is not nullable")
        ok = {
            ColumnType.int: pdt.is_integer_dtype(series) or _whole_floats(series),
            ColumnType.float: pdt.is_numeric_dtype(series) and not pdt.is_bool_dtype(series),
            ColumnType.bool: pdt.is_bool_dtype(series),
            ColumnType.category: pdt.is_object_dtype(series)
            or pdt.is_string_dtype(series)
            or isinstance(series.dtype, pd.CategoricalDtype),
        }[column.type]
        if not ok:
            problems.append(
                f"column {column.name!r} is {series.dtype}, schema says {column.type.value}"
            )
    if problems:
        raise BundleError(f"{source}: does not match the spec's schema: " + "; ".join(problems))


def _whole_floats(series) -> bool:
    from pandas.api import types as pdt

    values = series.dropna()
    return pdt.is_float_dtype(series) and bool((values == values.round()).all())


def load_model(
    path: Path, *, trust_pickle: bool = False, trusted_types: list[str] | tuple[str, ...] = ()
):
    """Load a `.skops` file (with the spec's `trusted_types`), or a pickle/joblib one only when
    `trust_pickle` (pickles can run code); every way the file can be broken is a BundleError."""
    from fearless.bundles.model_files import ModelFileError, load_model_file

    if not path.is_file():
        raise BundleError(f"{path}: model file not found (spec field 'model')")
    try:
        return load_model_file(path, trust_pickle=trust_pickle, trusted_types=trusted_types)
    except ModelFileError as exc:
        raise BundleError(str(exc)) from exc


def check_model_predicts(model, reference, source: Path) -> None:
    """Score a few reference rows so a model/schema mismatch fails at build, not at serve."""
    try:
        model.predict(reference.head(5))
    except Exception as exc:
        raise BundleError(
            f"{source}: the model cannot score the reference data "
            f"({type(exc).__name__}: {exc}); does the schema match what it was trained on?"
        ) from exc


def _reference_stats(reference, spec: ModelSpec) -> dict:
    stats: dict[str, dict] = {"rows": {"count": len(reference)}}
    for column in spec.input_schema:
        series = reference[column.name]
        entry: dict = {"missing": int(series.isna().sum())}
        if column.type in (ColumnType.int, ColumnType.float):
            described = series.describe()
            entry.update({k: float(described[k]) for k in ("mean", "std", "min", "max")})
        else:
            entry["counts"] = {str(k): int(v) for k, v in series.value_counts().items()}
        stats[column.name] = entry
    return stats


def model_libraries(model) -> list[str]:
    """The distributions of MODEL_LIBRARIES that `model` or an estimator inside it is from."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    roots = {type(obj).__module__.split(".")[0] for obj in [model, *params.values()]}
    return [dist for root, dists in MODEL_LIBRARIES.items() if root in roots for dist in dists]


def _requirements(model) -> str:
    lines = []
    for package in [*RUNTIME_PACKAGES, *model_libraries(model)]:
        try:
            lines.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


def _git_source(folder: Path) -> dict:
    """The git commit a project was built from, and whether it had uncommitted changes."""
    source: dict = {"path": str(folder.resolve()), "git_commit": None}
    if shutil.which("git") is None:
        return source

    def git(*args: str) -> subprocess.CompletedProcess:
        argv = ["git", "-C", str(folder), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    head = git("rev-parse", "HEAD")
    if head.returncode == 0:  # else not a git checkout: nothing to record
        dirty = bool(git("status", "--porcelain", "--", ".").stdout)
        source.update(git_commit=head.stdout.strip(), git_dirty=dirty)
    return source


def stage_bundle(
    project: Path | str, into: Path, *, trust_pickle: bool = False, source: dict | None = None
) -> str:
    """Validate a model project and write its bundle files into `into`; return the digest.

    Everything that can be wrong with the inputs fails here, before anything is provisioned.
    `source` says where the project came from (default: its folder and git commit).
    """
    spec_file = spec_path_of(project)
    spec = load_spec(spec_file)
    root = spec_file.parent
    model_src, reference_src = root / spec.model, root / spec.reference_data
    registered = None
    if spec.registered_model is not None:  # fetched, then loaded like a file of the project
        from fearless.bundles.mlflow_model import fetch_registered_model

        tracking_uri = spec.mlflow.tracking_uri if spec.mlflow else None
        registered = fetch_registered_model(spec.registered_model, into / ".mlflow", tracking_uri)
        model_src = registered.model_file
    reference = read_reference(spec, reference_src)
    model = load_model(model_src, trust_pickle=trust_pickle, trusted_types=spec.trusted_types)
    check_model_predicts(model, reference, model_src)

    into.mkdir(parents=True, exist_ok=True)
    model_name = "model" + "".join(model_src.suffixes)
    reference_name = "reference" + reference_src.suffix
    shutil.copyfile(model_src, into / model_name)
    shutil.rmtree(into / ".mlflow", ignore_errors=True)
    shutil.copyfile(reference_src, into / reference_name)
    bundled = spec.model_copy(
        update={"model": Path(model_name), "reference_data": Path(reference_name)}
    )
    (into / SPEC_FILENAME).write_text(yaml.safe_dump(bundled.to_yaml_dict(), sort_keys=False))
    schema = [c.model_dump(mode="json") for c in spec.input_schema]
    (into / "schema.json").write_text(json.dumps(schema, indent=2, sort_keys=True))
    stats = _reference_stats(reference, spec)
    (into / "reference_stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True))
    (into / "requirements.txt").write_text(_requirements(model))
    from fearless.bundles.image import dockerfile_for

    (into / "Dockerfile").write_text(dockerfile_for(bundled))

    files = {p.name: integrity.file_sha256(p) for p in sorted(into.iterdir()) if p.name != MANIFEST}
    digest = integrity.bundle_digest(spec.name, files)
    # Where it came from is recorded, not hashed: the same files from another commit are the
    # same artifact (the build cache keeps the first build's source).
    source = source if source is not None else _git_source(root)
    if registered is not None:
        source = {**source, "mlflow": registered.record}
    manifest = {"name": spec.name, "digest": digest, "files": files, "source": source}
    (into / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return digest


def build_bundle(
    project: Path | str, registry, *, trust_pickle: bool = False, source: dict | None = None
) -> Bundle:
    """Stage a bundle and store it in the registry; an existing digest is reused as is."""
    with tempfile.TemporaryDirectory(prefix="fearless-bundle-") as tmp:
        try:
            digest = stage_bundle(project, Path(tmp), trust_pickle=trust_pickle, source=source)
        except SpecError as exc:
            raise BundleError(str(exc)) from None
        return registry.store_bundle(Path(tmp), digest)
