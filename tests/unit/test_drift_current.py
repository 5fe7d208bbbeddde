"""Production traffic streamed for the drift check: every-row counts equal the in-memory ones,
and the sample is uniform, bounded and seeded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from fearless.drift.current import read_counts, sample_current
from fearless.drift.frames import prepared
from fearless.drift.quality import measure_quality
from fearless.serving.inference_log import InferenceLog, read_inference_log
from fearless.spec import ModelSpec

SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "model.skops",
        "reference_data": "reference.parquet",
        "schema": {
            "age": "int",
            "income": {"type": "float", "nullable": True},
            "purpose": {"type": "category", "values": ["car", "home"]},
        },
    }
)
REFERENCE = pd.DataFrame({"age": [20, 60], "income": [1.0, 100.0], "purpose": ["car", "education"]})
DAY = datetime(2026, 3, 1, tzinfo=UTC)


def _records(rows: int, seed: int = 0) -> list[dict]:
    random = np.random.default_rng(seed)
    purposes = ["car", "home", "education", "crypto", "boat"]
    return [
        {
            "age": int(random.integers(10, 70)),
            "income": None if i % 7 == 0 else float(random.uniform(0, 120)),
            "purpose": purposes[i % len(purposes)],
        }
        for i in range(rows)
    ]


def _log(root, records: list[dict], segment_bytes: int = 4000) -> None:
    """The records logged over an hour from DAY, a few per batch, in small segments."""
    times = iter(DAY + timedelta(seconds=i) for i in range(len(records)))
    log = InferenceLog(root, "credit", "d", clock=lambda: next(times), schema=SPEC.input_schema)
    log.segment_bytes = segment_bytes
    for at in range(0, len(records), 3):
        batch = records[at : at + 3]
        log.append(f"r{at}", batch, [{"prediction": 0, "score": 0.1} for _ in batch], 1.0)
    log.close()


def _expected(root, since=None):
    served = read_inference_log(root, "credit", since)
    schema = SPEC.input_schema
    reference = prepared(REFERENCE, schema, "reference")
    current = prepared(served, schema, "current")
    declared = {"purpose": ["car", "home"]}
    return reference, measure_quality(reference, current, ["age", "income"], declared)


def test_every_row_counts_match_the_in_memory_measure(tmp_path):
    _log(tmp_path, _records(300))
    assert len(list(tmp_path.glob("credit/*/*.parquet"))) > 3  # several segments streamed
    reference, expected = _expected(tmp_path)

    current = sample_current(tmp_path, "credit", None, SPEC.input_schema, reference, 50)

    assert current.counts.rows == 300
    assert current.counts.quality.missing_share == pytest.approx(expected.missing_share)
    assert current.counts.quality.out_of_range_share == pytest.approx(expected.out_of_range_share)
    assert current.counts.quality.new_categories == {"purpose": ["boat", "crypto"]}
    assert current.counts.quality.new_categories == expected.new_categories


def test_the_sample_is_bounded_distinct_seeded_and_within_since(tmp_path):
    records = _records(400)
    _log(tmp_path, records)
    since = DAY + timedelta(seconds=33)  # a batch of 3 a second: from the 100th record on
    reference, _ = _expected(tmp_path, since)

    first = sample_current(tmp_path, "credit", since, SPEC.input_schema, reference, 120)
    again = sample_current(tmp_path, "credit", since, SPEC.input_schema, reference, 120)
    every = sample_current(tmp_path, "credit", since, SPEC.input_schema, reference, 10_000)

    assert first.counts.rows == 301 and len(first.sample) == 120
    assert first.sample.equals(again.sample)
    assert list(first.sample.columns) == ["age", "income", "purpose"]
    assert len(every.sample) == 301
    window = [str({**r, "age": float(r["age"])}) for r in records[99:]]
    assert sorted(_rows(every.sample)) == sorted(window)
    # uniform over the window: the sample is not just its first segments
    sampled = set(_rows(first.sample))
    assert sampled & set(window[:100]) and sampled & set(window[-100:])


def _rows(frame: pd.DataFrame) -> list[str]:
    return [str(r) for r in frame.astype(object).where(frame.notna(), None).to_dict("records")]


def test_the_counts_travel_with_the_sample_file(tmp_path):
    _log(tmp_path / "logs", _records(30))
    reference, _ = _expected(tmp_path / "logs")
    current = sample_current(tmp_path / "logs", "credit", None, SPEC.input_schema, reference, 10)

    path = current.write(tmp_path / "current.parquet")

    assert read_counts(path) == current.counts
    assert len(pd.read_parquet(path)) == 10
    pd.DataFrame({"age": [1]}).to_parquet(tmp_path / "plain.parquet")
    assert read_counts(tmp_path / "plain.parquet") is None


def test_no_log_is_zero_rows_and_an_empty_sample(tmp_path):
    reference = prepared(REFERENCE, SPEC.input_schema, "reference")
    current = sample_current(tmp_path, "credit", None, SPEC.input_schema, reference, 10)
    assert current.counts.rows == 0 and current.sample.empty
