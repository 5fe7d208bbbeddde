"""The model API's limits, metrics, micro-batching and Open Inference Protocol, in process."""

from __future__ import annotations

import asyncio
import json

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fearless.bundles.model_files import load_model_file
from fearless.serving.app import ServingOptions, create_app
from fearless.serving.batching import BatchOptions
from fearless.serving.inference_log import read_inference_log
from fearless.spec import load_spec

DIGEST = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def records(credit_project) -> list[dict]:
    return pd.read_parquet(credit_project / "reference.parquet").head(4).to_dict("records")


def make_app(credit_project, log_dir=None, **options):
    spec = load_spec(credit_project)
    return create_app(spec, credit_project / spec.model, DIGEST, log_dir, ServingOptions(**options))


@pytest.fixture
def client(credit_project, tmp_path):
    with TestClient(make_app(credit_project, tmp_path / "inference")) as client:
        yield client


def columns(records: list[dict]) -> list[dict]:
    """The records as V2 input tensors, one per column."""
    types = {int: "INT64", float: "FP64", str: "BYTES", bool: "BOOL"}
    return [
        {
            "name": c,
            "shape": [len(records)],
            "datatype": types[type(v)],
            "data": [r[c] for r in records],
        }
        for c, v in records[0].items()
    ]


def test_a_body_over_the_limit_answers_413(credit_project, records):
    with TestClient(make_app(credit_project, max_body_bytes=500)) as client:
        small = client.post("/predict", json={"records": records[:1]})
        big = client.post("/predict", json={"records": records * 3})
        chunked = client.post(
            "/predict",
            content=iter([json.dumps({"records": records * 3}).encode()]),
            headers={"content-type": "application/json"},
        )

    assert small.status_code == 200
    assert big.status_code == 413 and "500 bytes" in big.json()["detail"]
    assert chunked.status_code == 413


def test_metrics_count_requests_errors_and_latency(client, records):
    client.post("/predict", json={"records": records})
    client.post("/predict", json={"records": [{"age": "old"}]})

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'fearless_http_requests_total{code="200",route="/predict"} 1.0' in text
    assert 'fearless_http_errors_total{code="422",route="/predict"} 1.0' in text
    assert 'fearless_http_request_duration_seconds_count{route="/predict"} 2.0' in text
    assert "fearless_predicted_records_total 4.0" in text


def test_v2_health_metadata_and_infer(client, records, credit_project):
    model = load_model_file(credit_project / "model.skops", trust_pickle=False)

    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/credit/ready").status_code == 200
    metadata = client.get("/v2/models/credit").json()
    assert metadata["versions"] == [DIGEST]
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["purpose"] == "BYTES"

    answer = client.post("/v2/models/credit/infer", json={"id": "q-1", "inputs": columns(records)})

    assert answer.status_code == 200
    body = answer.json()
    assert (body["model_name"], body["id"]) == ("credit", "q-1")
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["prediction"]["data"] == model.predict(pd.DataFrame(records)).tolist()
    assert outputs["score"]["shape"] == [len(records)]
    assert outputs["score"]["data"] == pytest.approx(
        model.predict_proba(pd.DataFrame(records))[:, 1]
    )


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        (lambda inputs: inputs[:-1], 400, "missing inputs: employment"),
        (lambda inputs: [*inputs, {**inputs[0], "name": "zip"}], 400, "not in the model's schema"),
        (lambda inputs: [{**inputs[0], "data": ["x"] * 4}, *inputs[1:]], 400, "age"),
        (lambda inputs: [{**inputs[0], "shape": [3]}, *inputs[1:]], 400, "shape"),
        (lambda inputs: [{**inputs[0], "data": [1]}, *inputs[1:]], 400, "same number"),
    ],
)
def test_v2_bad_requests_answer_400_with_an_error(client, records, change, status, message):
    response = client.post("/v2/models/credit/infer", json={"inputs": change(columns(records))})

    assert response.status_code == status
    assert message in response.json()["error"]


def test_v2_another_models_name_answers_404(client, records):
    assert client.get("/v2/models/other").status_code == 404
    response = client.post("/v2/models/other/infer", json={"inputs": columns(records)})
    assert response.status_code == 404 and "credit" in response.json()["error"]


def test_concurrent_requests_share_one_predict_call_and_one_log_write(
    credit_project, records, tmp_path
):
    asyncio.run(_concurrent_requests(credit_project, records, tmp_path))


async def _concurrent_requests(credit_project, records, tmp_path):
    log_dir = tmp_path / "inference"
    app = make_app(credit_project, log_dir, batch=BatchOptions(max_records=64, max_wait_s=0.05))
    writes = []
    async with app.router.lifespan_context(app):
        served = app.state.served
        original = served.log.append_batch
        served.log.append_batch = lambda entries, ms: (
            writes.append(len(entries)) or original(entries, ms)
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/predict", json={"records": [r]}, headers={"X-Request-ID": f"r{i}"}
                    )
                    for i, r in enumerate(records * 4)
                )
            )
        # The open segment's lines, before the shutdown compacts it into Parquet
        lines = [json.loads(line) for f in log_dir.glob("credit/*/*.jsonl") for line in f.open()]

    assert [a.status_code for a in answers] == [200] * 16
    assert sum(writes) == 16 and len(writes) < 16
    assert not list(log_dir.glob("credit/*/*.jsonl")), "the shutdown compacts the segment"
    logged = {line["request_id"]: line for line in lines}
    assert len(lines) == len(logged) == 16
    for i, answer in enumerate(answers):
        assert answer.headers["X-Request-ID"] == f"r{i}"
        [prediction] = answer.json()["predictions"]
        assert logged[f"r{i}"]["inputs"] == records[i % len(records)]
        assert logged[f"r{i}"]["prediction"] == prediction["prediction"]
    assert len(read_inference_log(log_dir, "credit")) == 16


def test_a_record_the_model_cannot_score_fails_alone(credit_project, records):
    asyncio.run(_one_bad_record(credit_project, records))


async def _one_bad_record(credit_project, records):
    app = make_app(credit_project, batch=BatchOptions(max_records=64, max_wait_s=0.05))
    async with app.router.lifespan_context(app):
        predictor = app.state.served.predictor
        real = predictor.predict

        def picky(batch):
            if any(r["income"] == 13.0 for r in batch):
                raise ValueError("Input X contains infinity")
            return real(batch)

        predictor.predict = picky
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            bad = {**records[0], "income": 13.0}
            answers = await asyncio.gather(
                *(client.post("/predict", json={"records": [r]}) for r in [*records, bad])
            )

    assert [a.status_code for a in answers] == [200] * len(records) + [422]
    assert "cannot score" in answers[-1].json()["detail"]


def test_huge_integers_answer_422_not_500(client, records):
    response = client.post("/predict", json={"records": [{**records[0], "age": 10**30}]})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "records", 0, "age"]


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", '{"records": "x"}', '"\\ud800"'])
def test_malformed_bodies_answer_422(client, text):
    response = client.post("/predict", content=text, headers={"content-type": "application/json"})

    assert response.status_code == 422
