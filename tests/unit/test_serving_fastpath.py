"""The model's scoring paths (the compiled numpy fast path, its fallback) and log rotation."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pandas as pd
import pytest

from fearless.bundles.model_files import load_model_file
from fearless.serving.inference_log import InferenceLog, read_inference_log
from fearless.serving.predictor import Predictor
from fearless.spec import load_spec

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("version", ["credit_project", "credit_challenger"])
def test_the_fast_path_scores_as_the_model_does(request, version):
    project = request.getfixturevalue(version)
    spec, model = load_spec(project), load_model_file(project / "model.skops", trust_pickle=False)
    frame = pd.read_parquet(project / "reference.parquet")
    predictor = Predictor(model, spec.input_schema)

    assert predictor.use_fast_path(frame.head(100).to_dict("records")) == "numpy"
    served = predictor.predict(frame.to_dict("records"))

    assert [p["prediction"] for p in served] == model.predict(frame).tolist()
    assert [p["score"] for p in served] == pytest.approx(model.predict_proba(frame)[:, 1], 1e-9)
    assert "LogisticRegression" in predictor.path_detail


def _lying_on_arrays(x):
    """Answers differently for an array than for a DataFrame: a fast path must not be used."""
    import numpy as np

    return np.asarray(x, dtype=float) + (0.0 if isinstance(x, pd.DataFrame) else 1.0)


@pytest.mark.parametrize(
    ("step", "why"),
    [
        ("drop-first", "not compiled: OneHotEncoder with drop"),
        ("lying", "differ from the model's own"),
    ],
)
def test_the_model_itself_scores_when_the_fast_path_is_unsupported(credit_project, step, why):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

    spec = load_spec(credit_project)
    frame = pd.read_parquet(credit_project / "reference.parquet")
    target = (frame["debt_ratio"] > 0.4).astype(int)
    numbers = ["debt_ratio", "age"]
    encoder = OneHotEncoder(drop="first") if step == "drop-first" else "drop"
    transform = FunctionTransformer(_lying_on_arrays if step == "lying" else None)
    features = ColumnTransformer(
        [("numbers", transform, numbers), ("categories", encoder, ["purpose", "employment"])]
    )
    model = make_pipeline(features, LogisticRegression(max_iter=500)).fit(frame, target)
    predictor = Predictor(model, spec.input_schema)

    assert predictor.use_fast_path(frame.head(50).to_dict("records")) == "pandas"
    assert why in predictor.path_detail
    served = predictor.predict(frame.head(30).to_dict("records"))
    assert [p["prediction"] for p in served] == model.predict(frame.head(30)).tolist()


def test_log_files_rotate_into_one_folder_per_model_and_day(tmp_path):
    days = iter([datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)])
    log = InferenceLog(tmp_path, "credit", DIGEST, clock=lambda: next(days))
    other = InferenceLog(tmp_path, "fraud", DIGEST)
    record = {"age": 40}

    first = log.append("r-1", [record], [{"prediction": 1, "score": 0.9}], 1.0)
    second = log.append("r-2", [record], [{"prediction": 0, "score": 0.1}], 1.0)
    third = other.append("r-3", [record], [{"prediction": 0, "score": 0.2}], 1.0)

    assert first.parent == tmp_path / "credit" / "2026-03-01"
    assert second.parent == tmp_path / "credit" / "2026-03-02"
    assert first.name.startswith(f"{os.getpid()}-") and first.suffix == ".jsonl"
    assert third.parent.parent == tmp_path / "fraud"
    assert read_inference_log(tmp_path, "credit")["prediction"].tolist() == [1, 0]
    since = read_inference_log(tmp_path, "credit", since=datetime(2026, 3, 2, tzinfo=UTC))
    assert since["prediction"].tolist() == [0]
