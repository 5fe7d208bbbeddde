"""Real Evidently on small frames: what drifts is flagged, what does not passes.

Evidently is imported once for this module (~11 s); each report then takes well under a second.
The subprocess test pays the import again in its child, once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fearless.drift.engine import compute_drift
from fearless.drift.process import run_drift_subprocess
from fearless.drift.verdict import DriftError, evaluate_drift
from fearless.spec import Column, DriftThresholds

SCHEMA = [
    Column(name="age", type="int"),
    Column(name="income", type="float"),
    Column(name="loan_amount", type="float"),
    Column(name="credit_history_months", type="int"),
    Column(name="debt_ratio", type="float"),
    Column(name="purpose", type="category", values=["car", "home", "education"]),
    Column(name="region", type="category"),  # coded as ints: only the schema says "category"
]
LIMITS = DriftThresholds(max_drifted_share=0.25)


def applicants(n: int, seed: int, income_shift: float = 0.0, purposes=None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 70, n),
            "income": rng.normal(50_000 + income_shift, 15_000, n),
            "loan_amount": rng.lognormal(9, 0.5, n),
            "credit_history_months": rng.integers(0, 300, n),
            "debt_ratio": rng.beta(2, 5, n),
            "purpose": rng.choice(purposes or ["car", "home", "education"], n),
            "region": rng.integers(1, 5, n),
        }
    )


def predictions(n: int, seed: int) -> pd.DataFrame:
    score = np.random.default_rng(seed).random(n)
    return pd.DataFrame({"prediction": (score >= 0.5).astype(int), "score": score})


@pytest.fixture(scope="module")
def evidently():
    """Pay Evidently's import once for the module, outside any single test's timing."""
    import evidently

    return evidently


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return applicants(2000, seed=1)


def test_an_undrifted_sample_passes_and_keeps_evidentlys_reports(evidently, reference, tmp_path):
    scores = compute_drift(reference, applicants(1000, seed=2), SCHEMA, LIMITS, tmp_path)

    assert evaluate_drift(scores, LIMITS).passed
    assert [c.column for c in scores.columns] == [c.name for c in SCHEMA]
    assert all(not c.drifted and c.score < 0.1 for c in scores.columns)
    assert (scores.reference_rows, scores.current_rows, scores.drifted_share) == (2000, 1000, 0)
    assert scores.new_categories == {} and set(scores.missing_share.values()) == {0.0}
    assert scores.prediction_drift is None and scores.agreement is None

    assert scores.report_html == str(tmp_path / "report.html")
    assert Path(scores.report_html).stat().st_size > 100_000
    snapshot = json.loads(Path(scores.snapshot_json).read_text())
    methods = {m["config"]["column"]: m["config"]["method"] for m in snapshot["metrics"]}
    assert methods["region"] == "jensenshannon"  # declared categorical, not guessed numeric
    assert methods["age"] == "wasserstein" and methods["purpose"] == "jensenshannon"
    by_column = {c.column: c for c in scores.columns}
    assert by_column["region"].kind == "categorical" and by_column["age"].kind == "numeric"


def test_a_shifted_column_and_a_new_category_fail_naming_them(evidently, reference, tmp_path):
    current = applicants(1000, seed=3, income_shift=15_000, purposes=["car", "home", "crypto"])
    current.loc[:99, "debt_ratio"] = np.nan

    scores = compute_drift(reference, current, SCHEMA, LIMITS, tmp_path)
    verdict = evaluate_drift(scores, LIMITS)

    assert {c.column for c in scores.columns if c.drifted} == {"income", "purpose"}
    assert scores.drifted_share == pytest.approx(2 / 7)
    assert scores.new_categories == {"purpose": ["crypto"]}
    assert scores.missing_share["debt_ratio"] == pytest.approx(0.1)
    assert not verdict.passed
    assert "income (wasserstein" in verdict.reasons[0]
    assert "purpose (jensenshannon" in verdict.reasons[0]


def test_a_per_column_threshold_overrides_the_default(evidently, reference, tmp_path):
    current = applicants(1000, seed=3, income_shift=7_500)  # half a standard deviation
    limits = LIMITS.model_copy(update={"per_column": {"income": 0.9}})

    scores = compute_drift(reference, current, SCHEMA, limits, tmp_path)

    income = next(c for c in scores.columns if c.column == "income")
    assert income.threshold == 0.9 and not income.drifted and 0.3 < income.score < 0.9
    assert evaluate_drift(scores, limits).passed


def test_identical_predictions_agree_and_do_not_drift(evidently, reference, tmp_path):
    champion = predictions(1000, seed=4)
    scores = compute_drift(
        reference,
        applicants(1000, seed=2),
        SCHEMA,
        LIMITS,
        tmp_path,
        candidate_predictions=champion.copy(),
        champion_predictions=champion,
    )

    assert scores.agreement == 1.0 and scores.compared_rows == 1000
    assert scores.prediction_drift.score == pytest.approx(0.0, abs=1e-9)
    assert scores.prediction_drift.method == "wasserstein"
    assert evaluate_drift(scores, LIMITS).passed
    snapshot = json.loads(Path(scores.snapshot_json).read_text())
    assert "prediction_score" in {m["config"]["column"] for m in snapshot["metrics"]}
    assert len(scores.columns) == len(SCHEMA)  # the score is not counted as a data column


def test_flipped_predictions_disagree_and_drift(evidently, reference, tmp_path):
    champion = predictions(1000, seed=4)
    candidate = pd.DataFrame(
        {"prediction": 1 - champion["prediction"], "score": 1 - champion["score"] ** 0.3}
    )
    scores = compute_drift(
        reference,
        applicants(1000, seed=2),
        SCHEMA,
        LIMITS,
        tmp_path,
        candidate_predictions=candidate,
        champion_predictions=champion,
    )
    verdict = evaluate_drift(scores, LIMITS)

    assert scores.agreement < 0.1
    assert scores.prediction_drift.drifted and scores.prediction_drift.score > 0.5
    assert not verdict.passed
    assert [c.name for c in verdict.checks if not c.ok] == ["prediction_drift", "agreement"]


def test_no_current_rows_writes_no_report_and_fails(evidently, reference, tmp_path):
    scores = compute_drift(reference, reference.iloc[:0], SCHEMA, LIMITS, tmp_path)
    assert scores.current_rows == 0 and scores.columns == [] and scores.report_html is None
    assert not evaluate_drift(scores, LIMITS).passed


def test_missing_schema_columns_are_an_error(evidently, reference, tmp_path):
    with pytest.raises(DriftError, match="current data lacks schema columns: region"):
        compute_drift(reference, reference.drop(columns="region"), SCHEMA, LIMITS, tmp_path)


@pytest.fixture
def files(reference, tmp_path) -> dict[str, Path]:
    paths = {
        "reference": tmp_path / "reference.parquet",
        "current": tmp_path / "current.parquet",
        "candidate": tmp_path / "candidate.parquet",
        "champion": tmp_path / "champion.parquet",
        "spec": tmp_path / "fearless.yaml",
    }
    reference.to_parquet(paths["reference"])
    applicants(500, seed=5, income_shift=15_000).to_parquet(paths["current"])
    predictions(500, seed=6).to_parquet(paths["candidate"])
    predictions(500, seed=6).to_parquet(paths["champion"])
    spec = {
        "name": "credit",
        "model": "model.joblib",
        "reference_data": "reference.parquet",
        "schema": {c.name: c.type.value for c in SCHEMA},
        "drift": LIMITS.model_dump(),
    }
    paths["spec"].write_text(yaml.safe_dump(spec, sort_keys=False))
    return paths


def test_the_subprocess_entry_point_end_to_end(evidently, files, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    scores = run_drift_subprocess(
        files["reference"],
        files["current"],
        files["spec"],
        out,
        candidate_predictions_path=files["candidate"],
        champion_predictions_path=files["champion"],
        timeout_s=120,
    )
    print(f"drift subprocess took {time.monotonic() - started:.1f} s")

    assert (out / "scores.json").is_file()
    assert (out / "report.html").is_file() and (out / "snapshot.json").is_file()
    assert scores.current_rows == 500 and scores.agreement == 1.0
    assert "income" in [c.column for c in scores.columns if c.drifted]
    in_process = compute_drift(
        pd.read_parquet(files["reference"]),
        pd.read_parquet(files["current"]),
        SCHEMA,
        LIMITS,
        tmp_path / "in-process",
        candidate_predictions=pd.read_parquet(files["candidate"]),
        champion_predictions=pd.read_parquet(files["champion"]),
    )
    # Equal up to the last bit: category order follows the process's string hashing.
    both = [scores.prediction_drift, *scores.columns]
    expected = [in_process.prediction_drift, *in_process.columns]
    assert [d.model_dump(exclude={"score"}) for d in both] == [
        d.model_dump(exclude={"score"}) for d in expected
    ]
    assert [d.score for d in both] == pytest.approx([d.score for d in expected], rel=1e-12)


def test_the_subprocess_reports_a_bad_spec_with_its_message(files, tmp_path):
    files["spec"].write_text("name: credit\n")
    with pytest.raises(DriftError, match="exit code 2") as error:
        run_drift_subprocess(files["reference"], files["current"], files["spec"], tmp_path / "o")
    assert "invalid model spec" in str(error.value)


def test_sampled_scores_stay_within_the_stated_tolerance_of_every_row(evidently, tmp_path):
    from fearless.drift.engine import SAMPLE_ROWS, SAMPLE_TOLERANCE

    schema = SCHEMA[:2] + SCHEMA[5:6]  # age, income, purpose
    reference = applicants(3 * SAMPLE_ROWS, seed=4)
    current = applicants(3 * SAMPLE_ROWS, seed=5, income_shift=1_500)  # a tenth of a deviation
    current.loc[:9, "income"] = reference["income"].max() * 1.1  # just out of range

    full = compute_drift(reference, current, schema, LIMITS, tmp_path / "full", sample_rows=None)
    sampled = compute_drift(reference, current, schema, LIMITS, tmp_path / "sampled")

    assert (full.sample_rows, sampled.sample_rows) == (None, SAMPLE_ROWS)
    for exact, estimate in zip(full.columns, sampled.columns, strict=True):
        assert abs(exact.score - estimate.score) <= SAMPLE_TOLERANCE, exact.column
        # data quality is counted on every row, never on the sample
        assert estimate.out_of_range_share == exact.out_of_range_share
    income = next(c for c in sampled.columns if c.column == "income")
    assert income.out_of_range_share >= 10 / len(current)
