"""Tree models on ONNX Runtime: taken when it answers as the model does, else the model's own
predict, and /metadata says which and why."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fearless.bundles.bundle import stage_bundle
from fearless.bundles.model_files import load_model_file
from fearless.serving.app import create_app
from fearless.serving.predictor import Predictor
from fearless.spec import load_spec
from tests.unit.serving_models import tree_project

DIGEST = "sha256:" + "ab" * 32
FAMILIES = [
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "GradientBoostingRegressor",
    "BinaryGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "HistGradientBoostingClassifier",
]


def _loaded(project):
    spec = load_spec(project)
    model = load_model_file(project / spec.model, trust_pickle=False)
    frame = pd.read_parquet(project / spec.reference_data)
    return spec, model, frame


@pytest.mark.parametrize("family", FAMILIES)
def test_a_tree_model_scores_on_onnxruntime_as_it_does_itself(tmp_path, family):
    pytest.importorskip("onnxruntime")
    spec, model, frame = _loaded(tree_project(tmp_path, family))
    predictor = Predictor(model, spec.input_schema)

    assert predictor.use_fast_path(frame.to_dict("records")) == "onnxruntime"
    served = predictor.predict(frame.to_dict("records"))

    got = [p["prediction"] for p in served]
    if family.endswith("Classifier"):
        assert got == model.predict(frame).tolist()
        proba = model.predict_proba(frame)
        want = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
        assert [p["score"] for p in served] == pytest.approx(want, rel=1e-5)
    else:
        assert got == pytest.approx(model.predict(frame), rel=1e-5)
    assert "on onnxruntime" in predictor.path_detail


@pytest.mark.parametrize(
    ("family", "library"),
    [
        ("XGBRegressor", "xgboost"),
        ("XGBClassifier", "xgboost"),
        ("LGBMRegressor", "lightgbm"),
        ("LGBMClassifier", "lightgbm"),
    ],
)
def test_a_booster_loads_with_the_default_trust_and_serves_its_own_predict(
    tmp_path, family, library
):
    """XGBoost and LightGBM (the boosters extra): their skops files load with no trusted_types
    of the project's own, and the compiled model calls their predict on one thread."""
    pytest.importorskip(library)
    project = tree_project(tmp_path, family)
    spec, model, frame = _loaded(project)
    assert spec.trusted_types == []
    stage_bundle(project, tmp_path / "bundle")  # its image installs the library too
    pinned = (tmp_path / "bundle" / "requirements.txt").read_text()
    assert f"\n{library}" in pinned.replace("xgboost-cpu", "xgboost")
    predictor = Predictor(model, spec.input_schema)

    assert predictor.use_fast_path(frame.to_dict("records")) == "numpy"
    assert predictor.path_detail.endswith(f"{family} (one thread)")
    served = predictor.predict(frame.to_dict("records"))
    got = [p["prediction"] for p in served]
    if family.endswith("Classifier"):
        assert got == model.predict(frame).tolist()
    else:
        assert got == pytest.approx(model.predict(frame), rel=1e-12)


def test_without_the_runtime_a_tree_model_serves_its_own_predict_and_says_why(
    tmp_path, monkeypatch
):
    project = tree_project(tmp_path, "RandomForestRegressor")
    spec, model, frame = _loaded(project)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails: not installed

    with TestClient(create_app(spec, project / spec.model, DIGEST, None)) as client:
        scoring = client.get("/metadata").json()["scoring"]
        answer = client.post("/predict", json={"records": frame.head(3).to_dict("records")})

    assert scoring["path"] == "numpy"
    assert (
        "RandomForestRegressor (its own predict: onnxruntime is not installed"
        in (scoring["detail"])
    )
    assert "fast-trees" in scoring["detail"]
    got = [p["prediction"] for p in answer.json()["predictions"]]
    assert got == model.predict(frame.head(3)).tolist()


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_the_booster_names_trusted_are_the_names_of_the_librarys_own_types(library):
    """The names are written out so that loading a model imports neither library; they must
    stay the names skops reports for the installed version's types."""
    import subprocess
    import sys

    pytest.importorskip(library)
    from fearless.bundles.trusted_types import BOOSTER_TYPES, booster_types, name_of

    module = __import__(library)
    real = {
        name_of(getattr(module, name.rsplit(".", 1)[1]))
        for name in BOOSTER_TYPES[library]
        if name.startswith(library)
    }
    assert real == {n for n in BOOSTER_TYPES[library] if n.startswith(library)}
    assert set(BOOSTER_TYPES[library]) <= set(booster_types())
    spelled = (
        "import sys; from fearless.bundles.trusted_types import default_trusted_types;"
        f"default_trusted_types(); print({library!r} in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", spelled], check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "False", out.stderr
