import json
import math

import numpy as np
import pandas as pd
import pytest

from fearless.loadtest.traffic import synthesize_traffic, write_traffic
from fearless.spec import ModelSpec

SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "model.joblib",
        "reference_data": "reference.parquet",
        "schema": {
            "age": "int",
            "income": {"type": "float", "nullable": True},
            "purpose": "category",
            "owner": "bool",
        },
    }
)


@pytest.fixture
def reference() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.array([30, 41, 52], dtype="int64"),
            "income": [1000.5, np.nan, 3000.0],
            "purpose": pd.Categorical(["car", "house", "car"]),
            "owner": np.array([True, False, True]),
            "label": [0, 1, 0],
        }
    )


def test_records_have_schema_columns_and_plain_json_types(reference):
    records = synthesize_traffic(reference, SPEC, 200, seed=1)
    assert len(records) == 200
    for record in records:
        assert list(record) == ["age", "income", "purpose", "owner"]
        assert type(record["age"]) is int
        assert record["income"] is None or type(record["income"]) is float
        assert type(record["purpose"]) is str
        assert type(record["owner"]) is bool
    assert any(r["income"] is None for r in records)
    json.dumps(records, allow_nan=False)


def test_records_come_from_reference_rows(reference):
    rows = {(r.age, r.purpose) for r in reference.itertuples()}
    assert {(r["age"], r["purpose"]) for r in synthesize_traffic(reference, SPEC, 50, 0)} <= rows


def test_same_seed_same_traffic(reference):
    assert synthesize_traffic(reference, SPEC, 30, 7) == synthesize_traffic(reference, SPEC, 30, 7)
    assert synthesize_traffic(reference, SPEC, 30, 7) != synthesize_traffic(reference, SPEC, 30, 8)


def test_int_column_stored_as_float_with_nan_stays_int(reference):
    reference["age"] = [30.0, math.nan, 52.0]
    ages = {r["age"] for r in synthesize_traffic(reference, SPEC, 100, 0)}
    assert ages == {30, None, 52} and all(type(a) is int for a in ages - {None})


def test_missing_schema_column_is_an_error(reference):
    with pytest.raises(ValueError, match="owner"):
        synthesize_traffic(reference.drop(columns="owner"), SPEC, 5, 0)


def test_empty_reference_or_no_records_is_an_error(reference):
    with pytest.raises(ValueError):
        synthesize_traffic(reference.iloc[:0], SPEC, 5, 0)
    with pytest.raises(ValueError):
        synthesize_traffic(reference, SPEC, 0, 0)


def test_write_traffic_is_one_json_record_per_line(reference, tmp_path):
    records = synthesize_traffic(reference, SPEC, 10, 0)
    path = write_traffic(records, tmp_path / "sub" / "traffic.jsonl")
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
