"""The model API in-process (TestClient): answers, validation, inference log."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fearless.bundles.model_files import load_model_file
from fearless.serving.app import ServingOptions, create_app
from fearless.serving.inference_log import read_inference_log
from fearless.spec import ModelSpec, load_spec

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def records(credit_project) -> list[dict]:
    return pd.read_parquet(credit_project / "reference.parquet").head(3).to_dict("records")


@pytest.fixture
def log_dir(tmp_path) -> Path:
    return tmp_path / "inference"


@pytest.fixture
def client(credit_project, log_dir):
    spec = load_spec(credit_project)
    app = create_app(spec, credit_project / spec.model, DIGEST, log_dir)
    with TestClient(app) as client:
        yield client


def post_json(client: TestClient, text: str):
    """Raw JSON text, since NaN cannot be sent through the client's own encoder."""
    return client.post("/predict", content=text, headers={"content-type": "application/json"})


def test_predict_answers_one_prediction_per_record(client, records):
    response = client.post("/predict", json={"records": records}, headers={"X-Request-ID": "r-1"})

    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["digest"]) == ("credit", DIGEST)
    assert len(body["predictions"]) == len(records)
    for item in body["predictions"]:
        assert set(item) == {"prediction", "score"}
        assert item["prediction"] in (0, 1)
        assert 0.0 <= item["score"] <= 1.0
    assert response.headers["X-Request-ID"] == "r-1"


def test_predictions_are_the_models_own(client, records, credit_project):
    model = load_model_file(credit_project / "model.skops", trust_pickle=False)
    frame = pd.DataFrame(records)

    predictions = client.post("/predict", json={"records": records}).json()["predictions"]

    assert [p["prediction"] for p in predictions] == model.predict(frame).tolist()
    assert [p["score"] for p in predictions] == pytest.approx(model.predict_proba(frame)[:, 1])


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({"age": "forty"}, "age", "int_type"),
        ({"age": True}, "age", "int_type"),
        ({"age": 40.5}, "age", "int_from_float"),
        ({"income": "52000"}, "income", "float_type"),
        ({"purpose": 3}, "purpose", "string_type"),
        ({"zip_code": "10115"}, "zip_code", "extra_forbidden"),
        ({"debt_ratio": None}, "debt_ratio", "float_type"),
    ],
)
def test_a_bad_record_answers_422_naming_the_field(client, records, change, field, error):
    response = client.post("/predict", json={"records": [records[0], {**records[1], **change}]})

    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "records", 1, field]
    assert detail["type"] == error


def test_a_missing_column_answers_422_naming_it(client, records):
    record = {k: v for k, v in records[0].items() if k != "employment"}

    response = client.post("/predict", json={"records": [record]})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "records", 0, "employment"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_answer_422_not_500(client, records, token):
    text = json.dumps({"records": [{**records[0], "income": 0.5}]}).replace("0.5", token)

    response = post_json(client, text)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "records", 0, "income"]


@pytest.mark.parametrize("count", [0, 1001])
def test_record_count_outside_1_to_1000_answers_422(client, records, count):
    response = client.post("/predict", json={"records": (records * 400)[:count]})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "records"]


def test_a_whole_float_is_accepted_as_int(client, records, log_dir):
    response = client.post("/predict", json={"records": [{**records[0], "age": 41.0}]})

    assert response.status_code == 200
    assert read_inference_log(log_dir, "credit")["age"].tolist() == [41]


def test_unknown_category_is_served_and_counted(client, records):
    unknown = {**records[0], "purpose": "crypto"}

    response = client.post("/predict", json={"records": [unknown, unknown, records[1]]})

    assert response.status_code == 200
    assert len(response.json()["predictions"]) == 3
    assert client.get("/metadata").json()["unknown_categories"] == {"purpose": 2, "employment": 0}


def test_every_record_is_logged_and_readable(client, records, log_dir):
    before = datetime.now(UTC)
    answer = client.post("/predict", json={"records": records}, headers={"X-Request-ID": "r-7"})
    client.post("/predict", json={"records": records[:1]})

    [log_file] = (log_dir / "credit").glob("*/*.jsonl")
    assert log_file.name.startswith(f"{os.getpid()}-")  # this process's open segment
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert len(lines) == len(records) + 1
    assert lines[0]["inputs"] == records[0]
    assert {line["request_id"] for line in lines[: len(records)]} == {"r-7"}
    assert all(line["latency_ms"] > 0 and line["model"] == "credit" for line in lines)

    served = read_inference_log(log_dir, "credit")
    assert list(served.columns) == list(records[0]) + ["prediction", "score", "digest", "ts"]
    assert len(served) == len(records) + 1
    first = served.head(len(records))
    assert first[list(records[0])].to_dict("records") == records
    assert first["prediction"].tolist() == [p["prediction"] for p in answer.json()["predictions"]]
    assert set(served["digest"]) == {DIGEST}
    assert served["ts"].min() >= pd.Timestamp(before)


def test_reading_since_skips_older_records(client, records, log_dir):
    client.post("/predict", json={"records": records})

    later = datetime.now(UTC) + timedelta(seconds=1)
    assert len(read_inference_log(log_dir, "credit", since=later - timedelta(days=1))) == 3
    assert read_inference_log(log_dir, "credit", since=later).empty


def test_reading_an_empty_log_gives_the_output_columns(tmp_path):
    served = read_inference_log(tmp_path / "nothing", "credit")

    assert served.empty
    assert list(served.columns) == ["prediction", "score", "digest", "ts"]


def test_an_unwritable_log_answers_503_and_serves_nothing(credit_project, tmp_path, records):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    spec = load_spec(credit_project)
    app = create_app(spec, credit_project / spec.model, DIGEST, blocker / "inference")

    with TestClient(app) as client:
        response = client.post("/predict", json={"records": records})

    assert response.status_code == 503
    assert "cannot write the inference log" in response.json()["detail"]
    assert str(blocker) in response.json()["detail"]


def test_probes_and_metadata(client):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"ready": True}
    metadata = client.get("/metadata").json()
    assert (metadata["name"], metadata["digest"]) == ("credit", DIGEST)
    assert [c["name"] for c in metadata["schema"]][:2] == ["age", "income"]
    assert metadata["scoring"]["path"] == "numpy"


def test_not_ready_until_the_model_is_loaded(credit_project):
    spec = load_spec(credit_project)
    app = create_app(spec, credit_project / spec.model, DIGEST, None)

    client = TestClient(app)  # not entered: startup (the model load) has not run

    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200


def test_a_regressor_scores_null_and_nullable_columns_take_nan(tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    train = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0], "new": [True, False, True, False]})
    model = make_pipeline(SimpleImputer(), LinearRegression()).fit(train, [2.0, 4.0, 6.0, 8.0])
    joblib.dump(model, tmp_path / "model.joblib")
    spec = ModelSpec(
        name="price",
        model=Path("model.joblib"),
        reference_data=Path("reference.parquet"),
        schema=[
            {"name": "size", "type": "float", "nullable": True},
            {"name": "new", "type": "bool"},
        ],
    )
    trusted = ServingOptions(trust_pickle=True)  # the test's own pickle
    app = create_app(spec, tmp_path / "model.joblib", "dev", tmp_path / "logs", trusted)

    with TestClient(app) as client:
        ok = post_json(
            client, '{"records": [{"size": 2.0, "new": false}, {"size": NaN, "new": true}]}'
        )
        bad = client.post("/predict", json={"records": [{"size": 1.0, "new": "yes"}]})

    assert ok.status_code == 200
    [first, second] = ok.json()["predictions"]
    assert first["prediction"] == pytest.approx(4.0) and first["score"] is None
    assert second["score"] is None
    assert read_inference_log(tmp_path / "logs", "price")["size"].isna().tolist() == [False, True]
    assert bad.status_code == 422
