"""Small batches of a linear pipeline scored in Python: same answers as the model, or unused."""

from __future__ import annotations

import dataclasses
import math
import warnings

import pandas as pd
import pytest
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

from fearless.bundles.model_files import load_model_file
from fearless.serving import fastpath
from fearless.serving.linear_rows import _expit, compile_rows
from fearless.serving.predictor import Predictor
from fearless.spec import load_spec

NUMBERS = ["age", "income", "debt_ratio"]
CATEGORIES = ["purpose", "employment"]


def _frame(project):
    return pd.read_parquet(project / "reference.parquet")


def _target(frame):
    return (frame["debt_ratio"] > 0.4).astype(int)


def _fit(frame, numbers="scale", categories="ignore", classes=2):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    number_step = {"scale": StandardScaler(), "raw": "passthrough", "minmax": MinMaxScaler()}
    encoder = (
        OneHotEncoder(drop="first")
        if categories == "drop-first"
        else OneHotEncoder(handle_unknown=categories)
    )
    features = ColumnTransformer(
        [("numbers", number_step[numbers], NUMBERS), ("categories", encoder, CATEGORIES)]
    )
    target = _target(frame) if classes == 2 else pd.qcut(frame["income"], 3, labels=False)
    with warnings.catch_warnings():  # raw incomes converge slowly: the fit need not be good
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(features, LogisticRegression(max_iter=1000)).fit(frame, target)


def test_rows_score_the_example_as_the_model_does(credit_project):
    project = credit_project
    model = load_model_file(project / "model.skops", trust_pickle=False)
    frame = _frame(project)
    rows = compile_rows(model)

    assert rows is not None
    records = frame.to_dict("records")
    labels, scores = [], []
    for at in range(0, len(records), 5):
        got = rows.score(records[at : at + 5])
        labels += got[0]
        scores += got[1]
    assert labels == model.predict(frame).tolist()
    assert scores == pytest.approx(model.predict_proba(frame)[:, 1].tolist(), rel=1e-9)


@pytest.mark.parametrize("numbers", ["scale", "raw"])
def test_rows_take_scaled_or_raw_numbers(credit_project, numbers):
    frame = _frame(credit_project)
    model = _fit(frame, numbers=numbers)
    labels, scores = compile_rows(model).score(frame.to_dict("records"))

    assert labels == model.predict(frame).tolist()
    assert scores == pytest.approx(model.predict_proba(frame)[:, 1].tolist(), rel=1e-9)


def test_rows_take_a_scaled_logistic_regression_without_column_transformer(credit_project):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = _frame(credit_project)[NUMBERS]
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, _target(frame))
    labels, scores = compile_rows(model).score(frame.to_dict("records"))

    assert labels == model.predict(frame).tolist()
    assert scores == pytest.approx(model.predict_proba(frame)[:, 1].tolist(), rel=1e-9)


@pytest.mark.parametrize(
    "shape",
    [{"classes": 3}, {"categories": "drop-first"}, {"numbers": "minmax"}],
    ids=["multiclass", "one-hot-drop", "min-max-scaler"],
)
def test_other_shapes_get_no_row_scorer(credit_project, shape):
    assert compile_rows(_fit(_frame(credit_project), **shape)) is None


def test_the_challengers_polynomial_features_get_no_row_scorer(credit_challenger):
    model = load_model_file(credit_challenger / "model.skops", trust_pickle=False)

    assert compile_rows(model) is None


def test_a_tree_model_gets_no_row_scorer(credit_project):
    from sklearn.ensemble import RandomForestClassifier

    frame = _frame(credit_project)[NUMBERS]
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(frame, _target(frame))

    assert compile_rows(model) is None


def test_unknown_categories_count_for_nothing_or_fail_as_the_encoder_says(credit_project):
    frame = _frame(credit_project)
    odd = frame.head(3).assign(purpose="spaceship")
    ignoring = _fit(frame, categories="ignore")
    strict = _fit(frame, categories="error")

    labels, scores = compile_rows(ignoring).score(odd.to_dict("records"))
    assert labels == ignoring.predict(odd).tolist()
    assert scores == pytest.approx(ignoring.predict_proba(odd)[:, 1].tolist(), rel=1e-9)
    with pytest.raises(ValueError, match="'spaceship' in column 'purpose'"):
        compile_rows(strict).score(odd.to_dict("records"))


def test_the_predictor_scores_small_batches_in_python_and_large_ones_in_numpy(credit_project):
    spec = load_spec(credit_project)
    model = load_model_file(credit_project / "model.skops", trust_pickle=False)
    frame = _frame(credit_project)
    predictor = Predictor(model, spec.input_schema)
    predictor.use_fast_path(frame.head(100).to_dict("records"))
    calls = []
    rows = predictor._fast.rows
    counted = dataclasses.replace(rows, score=lambda r: calls.append(r) or rows.score(r))
    predictor._fast = dataclasses.replace(predictor._fast, rows=counted)

    assert rows.up_to == 102, "512 numbers a call, 5 numeric columns"
    assert "batches up to 102 records in Python" in predictor.path_detail
    small = frame.head(4)
    served = predictor.predict(small.to_dict("records"))
    assert len(calls) == 1
    assert [p["prediction"] for p in served] == model.predict(small).tolist()
    assert [p["score"] for p in served] == pytest.approx(model.predict_proba(small)[:, 1], 1e-9)
    large = frame.head(rows.up_to + 1)
    served = predictor.predict(large.to_dict("records"))
    assert len(calls) == 1, "a larger batch goes to the NumPy path"
    assert [p["prediction"] for p in served] == model.predict(large).tolist()


def test_a_row_scorer_that_disagrees_with_the_model_is_not_used(credit_project, monkeypatch):
    spec = load_spec(credit_project)
    model = load_model_file(credit_project / "model.skops", trust_pickle=False)
    frame = _frame(credit_project)

    def off_by_a_little(model):
        rows = compile_rows(model)
        return dataclasses.replace(
            rows, score=lambda r: (rows.score(r)[0], [s + 1e-6 for s in rows.score(r)[1]])
        )

    monkeypatch.setattr(fastpath, "compile_rows", off_by_a_little)
    predictor = Predictor(model, spec.input_schema)

    assert predictor.use_fast_path(frame.head(100).to_dict("records")) == "numpy"
    assert "in Python" not in predictor.path_detail
    assert predictor._fast.rows is None
    served = predictor.predict(frame.head(4).to_dict("records"))
    assert [p["score"] for p in served] == pytest.approx(
        model.predict_proba(frame.head(4))[:, 1], 1e-9
    )


@pytest.mark.parametrize("decision", [-800.0, -30.0, -1e-12, 0.0, 2.5, 800.0])
def test_the_logistic_function_matches_scipy_without_overflow(decision):
    assert _expit(decision) == pytest.approx(float(expit(decision)), rel=1e-12, abs=0)
    assert math.isnan(_expit(math.nan))


def _regressor(frame, family, targets=("loan_amount",)):
    from sklearn import linear_model
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer(
        [
            ("numbers", StandardScaler(), NUMBERS),
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
        ]
    )
    target = frame[targets[0]] if len(targets) == 1 else frame[list(targets)]
    estimator = getattr(linear_model, family)()
    return make_pipeline(features, estimator).fit(frame, target)


@pytest.mark.parametrize("family", ["LinearRegression", "Ridge", "Lasso", "ElasticNet"])
def test_rows_score_linear_regressors_as_the_model_does(credit_project, family):
    spec = load_spec(credit_project)
    frame = _frame(credit_project)
    model = _regressor(frame, family)
    values, scores = compile_rows(model).score(frame.to_dict("records"))

    assert scores is None
    assert values == pytest.approx(model.predict(frame).tolist(), rel=1e-9)
    predictor = Predictor(model, spec.input_schema)
    predictor.use_fast_path(frame.head(100).to_dict("records"))
    assert "records in Python" in predictor.path_detail
    served = predictor.predict(frame.head(4).to_dict("records"))
    assert [p["score"] for p in served] == [None] * 4
    assert [p["prediction"] for p in served] == pytest.approx(model.predict(frame.head(4)), 1e-9)


def test_a_regressor_of_two_targets_gets_no_row_scorer(credit_project):
    model = _regressor(_frame(credit_project), "Ridge", targets=("loan_amount", "income"))

    assert compile_rows(model) is None
