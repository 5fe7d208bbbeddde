"""A `.skops` file loads only types on an explicit allowlist (plus the spec's own additions):
a crafted file that names a function able to run code is refused by name, before loading."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from fearless.bundles.bundle import BundleError
from fearless.bundles.model_files import ModelFileError, load_model_file
from fearless.bundles.notebook import bundle_model
from fearless.registry.local import LocalRegistry
from fearless.serving.predictor import Predictor
from fearless.spec import SpecError, load_spec

# Functions a crafted file can name to run code when it is loaded: numpy's `runstring` calls
# exec; sklearn's test helper writes the code to a file and runs it with Python.
PAYLOADS = {
    "numpy-runstring": ("numpy.testing._private.utils", "runstring", "exec"),
    "sklearn-run-script": ("sklearn.utils._testing", "assert_run_python_script_without_output"),
}


def crafted_skops(path: Path, module: str, function: str, code: str, *, via: str) -> Path:
    """A skops file whose top object is built by calling `module.function(code, {})`."""
    args = (code, {}) if via == "exec" else (code, ".+", 30)
    with zipfile.ZipFile(io.BytesIO(sio.dumps(args))) as harmless:
        schema = json.loads(harmless.read("schema.json"))
    call = {
        "__class__": function,
        "__module__": module,
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in schema.items() if k not in ("protocol", "_skops_version")},
        "protocol": schema["protocol"],
        "_skops_version": schema["_skops_version"],
    }
    with zipfile.ZipFile(path, "w") as out:
        out.writestr("schema.json", json.dumps(call))
    return path


@pytest.mark.parametrize("payload", PAYLOADS, ids=list(PAYLOADS))
def test_a_skops_file_naming_a_code_running_function_is_refused_by_name(tmp_path, payload):
    module, function, *via = PAYLOADS[payload]
    marker = tmp_path / "payload-ran"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    path = crafted_skops(tmp_path / "model.skops", module, function, code, via=(via or [""])[0])

    with pytest.raises(ModelFileError) as refused:
        load_model_file(path, trust_pickle=False)

    assert f"{module}.{function}" in str(refused.value)
    assert "trusted_types" in str(refused.value)
    assert not marker.exists()


def test_a_type_outside_the_allowlist_is_refused_and_the_spec_field_allows_it(tmp_path):
    X = np.random.default_rng(0).normal(size=(60, 2))
    model = make_pipeline(
        FunctionTransformer(np.clip, kw_args={"a_min": -1, "a_max": 1}), LogisticRegression()
    ).fit(X, X[:, 0] > 0)
    sio.dump(model, tmp_path / "model.skops")

    with pytest.raises(ModelFileError, match=r"numpy\.clip.*trusted_types"):
        load_model_file(tmp_path / "model.skops", trust_pickle=False)

    loaded = load_model_file(
        tmp_path / "model.skops", trust_pickle=False, trusted_types=["numpy.clip"]
    )
    assert loaded.predict(X).tolist() == model.predict(X).tolist()


def _frame(rows: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "purpose": rng.choice(["car", "home", "other"], rows),
        }
    )
    return frame, (frame["income"] > frame["income"].median()).astype("int64")


def _pipeline(final):
    columns = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["purpose"]),
        ]
    )
    return make_pipeline(columns, final)


FAMILIES = {
    "logistic-pipeline": lambda: _pipeline(LogisticRegression()),
    "random-forest": lambda: _pipeline(RandomForestClassifier(n_estimators=5, random_state=0)),
    "hist-gradient-boosting": lambda: _pipeline(HistGradientBoostingClassifier(max_iter=10)),
    "hist-gradient-boosting-categorical": lambda: HistGradientBoostingClassifier(
        max_iter=10, categorical_features="from_dtype"
    ),
    "gradient-boosting": lambda: _pipeline(GradientBoostingClassifier(n_estimators=5)),
    "knn": lambda: _pipeline(KNeighborsClassifier()),
    "svc": lambda: _pipeline(SVC()),
    "calibrated-svc": lambda: _pipeline(CalibratedClassifierCV(SVC(), ensemble=False)),
    "ridge": lambda: _pipeline(Ridge()),
    "mlp": lambda: _pipeline(MLPClassifier(hidden_layer_sizes=(4,), max_iter=50)),
    "column-selector": lambda: make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), make_column_selector(dtype_include="number")),
                (
                    "cat",
                    OneHotEncoder(sparse_output=False),
                    make_column_selector(dtype_include=object),
                ),
            ]
        ),
        LogisticRegression(),
    ),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES, ids=list(FAMILIES))
def test_real_models_of_several_families_load_with_the_default_allowlist(tmp_path, family):
    frame, label = _frame()
    if family == "hist-gradient-boosting-categorical":
        frame = frame.assign(purpose=frame["purpose"].astype("category"))
    model = FAMILIES[family]().fit(frame, label)
    sio.dump(model, tmp_path / "model.skops")

    loaded = load_model_file(tmp_path / "model.skops", trust_pickle=False)

    assert loaded.predict(frame).tolist() == model.predict(frame).tolist()


def test_the_example_credit_model_loads_with_the_default_allowlist(credit_project):
    model = load_model_file(credit_project / "model.skops", trust_pickle=False)
    frame = pd.read_parquet(credit_project / "reference.parquet").head(20)
    assert len(model.predict(frame)) == 20


def _clipping_model():
    """A real model naming a function outside the defaults: `numpy.clip`."""
    frame, label = _frame()
    numeric = frame[["age", "income"]]
    clip = FunctionTransformer(np.clip, kw_args={"a_min": 0, "a_max": 1e6})
    return make_pipeline(clip, LogisticRegression()).fit(numeric, label), numeric


def test_a_type_listed_in_the_spec_is_loaded_by_the_bundle_and_the_model_api(tmp_path):
    model, frame = _clipping_model()
    registry = LocalRegistry(tmp_path / "registry")
    project = tmp_path / "clipped"

    with pytest.raises(BundleError, match=r"numpy\.clip"):
        bundle_model(model, frame, "clipped", project_dir=project, registry=registry)

    bundle = bundle_model(
        model,
        frame,
        "clipped",
        project_dir=project,
        registry=registry,
        trusted_types=["numpy.clip"],
    )
    spec = load_spec(bundle.path)
    assert spec.trusted_types == ["numpy.clip"]
    predictor = Predictor.load(
        bundle.model_path, spec.input_schema, trust_pickle=False, trusted_types=spec.trusted_types
    )
    assert predictor.model.predict(frame).tolist() == model.predict(frame).tolist()


@pytest.mark.parametrize("name", ["numpy", "numpy.", "numpy.*", "../x.y", "os.system; rm"])
def test_the_spec_field_holds_full_dotted_names_only(tmp_path, name):
    spec = {"name": "m", "model": "m.skops", "reference_data": "r.parquet", "schema": {"a": "int"}}
    (tmp_path / "fearless.yaml").write_text(yaml.safe_dump({**spec, "trusted_types": [name]}))

    with pytest.raises(SpecError, match="trusted_types"):
        load_spec(tmp_path)


def test_init_keeps_the_types_it_was_told_to_trust_in_the_spec(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fearless.cli import app

    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path / "state"))
    model, frame = _clipping_model()
    sio.dump(model, tmp_path / "model.skops")
    frame.to_parquet(tmp_path / "data.parquet")
    args = ["init", str(tmp_path / "clipped"), "--model", str(tmp_path / "model.skops")]
    args += ["--data", str(tmp_path / "data.parquet")]

    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "numpy.clip" in refused.output
    trusted = CliRunner().invoke(app, [*args, "--trust-type", "numpy.clip"])
    assert trusted.exit_code == 0, trusted.output
    assert load_spec(tmp_path / "clipped").trusted_types == ["numpy.clip"]
