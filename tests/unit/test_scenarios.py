import pytest
from pydantic import ValidationError

from fearless.spec import ModelSpec
from simulations.scenarios import (
    SCENARIOS_FILE,
    MeanShift,
    MissingValues,
    NewCategory,
    Scenario,
    apply_scenario,
    check_scenario,
    load_scenarios,
)

SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "m.joblib",
        "reference_data": "r.parquet",
        "schema": {
            "age": "int",
            "income": "float",
            "purpose": {"type": "category", "values": ["car", "home"]},
        },
    }
)
RECORDS = [{"age": 20 + i, "income": 1000.0 * i, "purpose": "car"} for i in range(10)]


def scenario(*changes) -> Scenario:
    return Scenario(name="s", changes=list(changes))


def test_mean_shift_by_an_amount_moves_every_value_and_keeps_ints():
    shifted = apply_scenario(RECORDS, scenario(MeanShift(column="age", by=2.6)), SPEC)
    assert [r["age"] for r in shifted] == [23 + i for i in range(10)]
    assert all(isinstance(r["age"], int) for r in shifted)
    assert RECORDS[0]["age"] == 20  # the input is left alone


def test_mean_shift_in_standard_deviations():
    shifted = apply_scenario(RECORDS, scenario(MeanShift(column="income", by_std=-1)), SPEC)
    std = (sum((1000.0 * i - 4500) ** 2 for i in range(10)) / 10) ** 0.5
    assert shifted[0]["income"] == pytest.approx(-std)
    mean = sum(r["income"] for r in shifted) / 10
    assert mean == pytest.approx(4500 - std)


def test_new_category_reaches_exactly_its_share_reproducibly():
    change = scenario(NewCategory(column="purpose", value="crypto", share=0.3))
    first = apply_scenario(RECORDS, change, SPEC, seed=1)
    assert sum(r["purpose"] == "crypto" for r in first) == 3
    assert first == apply_scenario(RECORDS, change, SPEC, seed=1)


def test_missing_values_blank_exactly_their_share():
    blanked = apply_scenario(RECORDS, scenario(MissingValues(column="income", share=0.5)), SPEC)
    assert sum(r["income"] is None for r in blanked) == 5


def test_a_shift_skips_missing_values_blanked_before_it():
    changes = scenario(MissingValues(column="age", share=1.0), MeanShift(column="age", by=1))
    assert all(r["age"] is None for r in apply_scenario(RECORDS, changes, SPEC))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (MeanShift(column="height", by=1), "no such column"),
        (MeanShift(column="purpose", by=1), "only int and float"),
        (NewCategory(column="age", value="x"), "only category"),
        (NewCategory(column="purpose", value="car"), "already a known category"),
    ],
)
def test_changes_that_do_not_fit_the_schema_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        check_scenario(scenario(change), SPEC)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "mean_shift", "column": "age"},
        {"kind": "mean_shift", "column": "age", "by": 1, "by_std": 1},
        {"kind": "missing_values", "column": "age", "share": 0},
        {"kind": "new_category", "column": "purpose", "value": "x", "share": 1.5},
        {"kind": "rename", "column": "age"},
    ],
)
def test_bad_changes_fail_validation(change):
    with pytest.raises(ValidationError):
        Scenario.model_validate({"name": "s", "changes": [change]})


def test_the_example_scenarios_fit_the_example_model(credit_project):
    from fearless.spec import load_spec

    spec = load_spec(credit_project / "fearless.yaml")
    scenarios = load_scenarios(SCENARIOS_FILE)
    assert {"income-drop", "new-purpose", "missing-debt-ratio"} <= set(scenarios)
    for s in scenarios.values():
        check_scenario(s, spec)
