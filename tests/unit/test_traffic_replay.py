import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from fearless.loadtest.traffic import (
    offsets_path,
    read_replay,
    replay_traffic,
    write_replay,
    write_traffic,
)
from fearless.serving.inference_log import InferenceLog
from fearless.spec import ModelSpec

SPEC = ModelSpec.model_validate(
    {
        "name": "credit",
        "model": "m.joblib",
        "reference_data": "r.parquet",
        "schema": {
            "age": "int",
            "income": {"type": "float", "nullable": True},
            "purpose": {"type": "category", "values": ["car", "home"]},
        },
    }
)
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def log_frame(rows: list[tuple[float, dict]]) -> pd.DataFrame:
    """An inference log as `read_inference_log` returns it: inputs, outputs, `ts`."""
    return pd.DataFrame(
        [
            {
                **inputs,
                "prediction": 0,
                "score": 0.1,
                "digest": "d",
                "ts": T0 + timedelta(seconds=s),
            }
            for s, inputs in rows
        ]
    )


def test_replay_keeps_the_recorded_order_and_offsets():
    log = log_frame(
        [
            (2.5, {"age": 41, "income": None, "purpose": "home"}),
            (0.0, {"age": 40, "income": 10.0, "purpose": "car"}),
            (2.5, {"age": 42, "income": 12.0, "purpose": "boat"}),
        ]
    )
    replay = replay_traffic(log, SPEC)
    assert [r["age"] for r in replay.records] == [40, 41, 42]
    assert replay.offsets_s == [0.0, 2.5, 2.5]
    assert replay.records[1]["income"] is None
    assert replay.records[2]["purpose"] == "boat"  # an unseen category is replayed as it came


def test_replay_limit_keeps_the_most_recent_records_and_restarts_the_clock():
    log = log_frame([(s, {"age": s, "income": 1.0, "purpose": "car"}) for s in range(5)])
    replay = replay_traffic(log, SPEC, limit=2)
    assert [r["age"] for r in replay.records] == [3, 4]
    assert replay.offsets_s == [0.0, 1.0]


def test_empty_log_cannot_be_replayed():
    with pytest.raises(ValueError, match="no records to replay"):
        replay_traffic(pd.DataFrame(columns=["prediction", "score", "digest", "ts"]), SPEC)


def test_log_without_a_schema_column_cannot_be_replayed():
    log = log_frame([(0, {"age": 1, "purpose": "car"})])
    with pytest.raises(ValueError, match="income"):
        replay_traffic(log, SPEC)


def test_replay_reads_what_the_production_api_logged(tmp_path):
    log = InferenceLog(tmp_path / "inference", "credit", "sha256:abc")
    first = [
        {"age": 30, "income": 1.0, "purpose": "car"},
        {"age": 31, "income": 2.0, "purpose": "car"},
    ]
    log.append("r1", first, [{"prediction": 0, "score": 0.2}] * 2, latency_ms=1.0)
    log.append(
        "r2",
        [{"age": 32, "income": None, "purpose": "home"}],
        [{"prediction": 1, "score": 0.7}],
        1.0,
    )

    replay = read_replay(tmp_path / "inference", SPEC)
    assert [r["age"] for r in replay.records] == [30, 31, 32]
    assert replay.offsets_s[:2] == [0.0, 0.0] and replay.offsets_s[2] >= 0


def test_write_replay_puts_offsets_beside_the_records(tmp_path):
    path = tmp_path / "traffic.jsonl"
    rows = [
        (0, {"age": 1, "income": 1.0, "purpose": "car"}),
        (1.5, {"age": 2, "income": 1.0, "purpose": "car"}),
    ]
    write_replay(replay_traffic(log_frame(rows), SPEC), path)
    assert len(path.read_text().splitlines()) == 2
    assert offsets_path(path) == tmp_path / "traffic.offsets.json"
    assert json.loads(offsets_path(path).read_text()) == [0.0, 1.5]
    write_traffic([{"age": 1, "income": 1.0, "purpose": "car"}], path)
    assert not offsets_path(path).exists()  # stale offsets never pair with new records


def test_offsets_must_match_the_records(tmp_path):
    with pytest.raises(ValueError, match="1 offsets for 2 records"):
        write_traffic([{}, {}], tmp_path / "t.jsonl", offsets_s=[0.0])
