import pytest

from fearless.drift.verdict import ColumnDrift, DriftScores, evaluate_drift
from fearless.spec import DriftThresholds

LIMITS = DriftThresholds(
    column_threshold=0.1, max_drifted_share=0.25, prediction_threshold=0.2, min_agreement=0.9
)


def column(name: str, score: float, threshold: float = 0.1) -> ColumnDrift:
    return ColumnDrift(
        column=name,
        kind="numeric",
        method="wasserstein",
        score=score,
        threshold=threshold,
        drifted=score >= threshold,
    )


def scores(drifted: int = 0, of: int = 4, **fields) -> DriftScores:
    columns = [column(f"c{i}", 0.5 if i < drifted else 0.01) for i in range(of)]
    return DriftScores(
        **{
            "columns": columns,
            "drifted_share": drifted / of,
            "reference_rows": 2000,
            "current_rows": 500,
            **fields,
        }
    )


def check(verdict, name):
    return next(c for c in verdict.checks if c.name == name)


def test_no_drift_passes_with_only_the_data_check():
    verdict = evaluate_drift(scores(), LIMITS)
    assert verdict.passed and verdict.reasons == []
    assert [c.name for c in verdict.checks] == ["drifted_share"]


def test_drifted_share_just_under_the_limit_passes():
    verdict = evaluate_drift(scores(drifted=1, of=5), LIMITS)  # 0.2 < 0.25
    assert verdict.passed


def test_drifted_share_exactly_at_the_limit_fails_and_names_the_columns():
    verdict = evaluate_drift(scores(drifted=1, of=4), LIMITS)  # 0.25 == 0.25
    assert not verdict.passed
    assert not check(verdict, "drifted_share").ok
    assert check(verdict, "drifted_share").observed == 0.25
    assert len(verdict.reasons) == 1 and "c0" in verdict.reasons[0]
    assert "1 of 4 columns" in verdict.reasons[0]


def test_a_zero_share_limit_fails_on_any_drifted_column_but_not_on_none():
    strict = LIMITS.model_copy(update={"max_drifted_share": 0.0})
    assert evaluate_drift(scores(drifted=0), strict).passed
    assert not evaluate_drift(scores(drifted=1, of=10), strict).passed


def prediction(score: float) -> ColumnDrift:
    return column("prediction_score", score, threshold=LIMITS.prediction_threshold)


@pytest.mark.parametrize(("score", "passed"), [(0.19999, True), (0.2, False), (0.5, False)])
def test_prediction_drift_fails_at_or_above_its_threshold(score, passed):
    verdict = evaluate_drift(
        scores(prediction_drift=prediction(score), agreement=1.0, compared_rows=500), LIMITS
    )
    assert verdict.passed is passed
    assert check(verdict, "prediction_drift").ok is passed
    assert check(verdict, "prediction_drift").limit == 0.2
    if not passed:
        assert "champion" in verdict.reasons[0]


@pytest.mark.parametrize(("agreement", "passed"), [(0.9, True), (0.89999, False), (1.0, True)])
def test_agreement_exactly_at_the_minimum_passes(agreement, passed):
    verdict = evaluate_drift(
        scores(prediction_drift=prediction(0.0), agreement=agreement, compared_rows=1000), LIMITS
    )
    assert verdict.passed is passed
    assert check(verdict, "agreement").ok is passed
    if not passed:
        assert verdict.reasons == [
            "candidate and champion agree on a share of 0.89999 of 1000 records, under the "
            + "minimum of 0.9"
        ]


def test_every_failing_gate_gives_its_own_reason():
    verdict = evaluate_drift(
        scores(drifted=4, prediction_drift=prediction(0.9), agreement=0.1, compared_rows=10),
        LIMITS,
    )
    assert not verdict.passed
    assert len(verdict.reasons) == 3
    assert [c.ok for c in verdict.checks] == [False, False, False]


def test_no_current_rows_fails_with_a_clear_reason():
    empty = DriftScores(columns=[], drifted_share=0.0, reference_rows=2000, current_rows=0)
    verdict = evaluate_drift(empty, LIMITS)
    assert not verdict.passed
    assert verdict.reasons[0].startswith("no current rows to compare with the 2000 reference rows")


def test_no_reference_rows_fails():
    empty = DriftScores(columns=[], drifted_share=0.0, reference_rows=0, current_rows=500)
    verdict = evaluate_drift(empty, LIMITS)
    assert not verdict.passed and "reference data has no rows" in verdict.reasons[0]


def test_no_records_scored_by_both_models_fails():
    verdict = evaluate_drift(
        scores(prediction_drift=prediction(0.0), agreement=None, compared_rows=0), LIMITS
    )
    assert not verdict.passed
    assert verdict.reasons == [
        "no records were scored by both candidate and champion: nothing to compare"
    ]


def test_scores_round_trip_through_json():
    original = scores(
        drifted=1,
        prediction_drift=prediction(0.05),
        agreement=0.95,
        compared_rows=500,
        missing_share={"c0": 0.1},
        new_categories={"purpose": ["crypto"]},
    )
    assert DriftScores.model_validate_json(original.model_dump_json()) == original


def test_data_quality_is_noted_for_the_reviewer_but_does_not_fail_the_gate():
    quality = column("income", 0.01).model_copy(
        update={"missing_share": 0.25, "out_of_range_share": 0.1}
    )
    purpose = column("purpose", 0.02).model_copy(update={"new_categories": ["crypto"]})

    verdict = evaluate_drift(scores(columns=[quality, purpose, column("age", 0.0)]), LIMITS)

    assert verdict.passed
    assert verdict.notes == [
        "income: 25.0% missing; 10.0% outside the reference range",
        "purpose: new categories crypto",
    ]
