"""A model API forwarding a sample of its predictions to a shadow: real processes, real HTTP,
the shadow's own inference log and both sides' /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fearless.bundles.bundle import build_bundle
from fearless.registry.local import LocalRegistry
from fearless.serving.forwarding import OUTCOMES, sampled
from tests.integration.conftest import stop_processes
from tests.integration.test_serving_process import _free_port, _wait_ready

DEADLINE_S = 60  # only ever reached when what is awaited does not happen


@dataclass
class Api:
    url: str
    process: subprocess.Popen
    log_dir: Path
    output: Path


@pytest.fixture(scope="module")
def bundle(credit_project, tmp_path_factory):
    return build_bundle(credit_project, LocalRegistry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="module")
def records(credit_project) -> list[dict]:
    return pd.read_parquet(credit_project / "reference.parquet").head(40).to_dict("records")


def environment(**settings: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FEARLESS_SHADOW_")}
    return {**inherited, **settings}


@pytest.fixture
def start(bundle, tmp_path):
    """Starts model APIs on the bundle (`start(name, port=None, **environment)`), all waited
    for with `ready(...)`; every one is stopped at the end."""
    started: list[subprocess.Popen] = []

    def start(name: str, port: int | None = None, **settings: str) -> Api:
        port, folder = port or _free_port(), tmp_path / name
        folder.mkdir()
        argv = [sys.executable, "-m", "fearless.serving", "--bundle", str(bundle.path)]
        argv += ["--port", str(port), "--log-dir", str(folder / "inference")]
        output = folder / "api.log"
        with output.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=environment(**settings)
            )
        started.append(process)
        return Api(f"http://127.0.0.1:{port}", process, folder / "inference", output)

    yield start
    stop_processes(*started)


def ready(*apis: Api) -> None:
    for api in apis:
        _wait_ready(api.url, api.process, api.output)


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {DEADLINE_S} s: {what}")
        time.sleep(0.1)


def logged(api: Api) -> dict[tuple[str, str], object]:
    """The API's inference-log rows: prediction by (request id, inputs as sorted JSON), as
    `fearless.production.shadow` pairs them."""
    rows = {}
    for segment in (api.log_dir / "credit").glob("*/*.jsonl"):
        for line in segment.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a last line still being written
            rows[row["request_id"], json.dumps(row["inputs"], sort_keys=True)] = row["prediction"]
    return rows


def ids(api: Api) -> set[str]:
    return {request_id for request_id, _ in logged(api)}


def samples(api: Api, name: str) -> list:
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def forwards(api: Api) -> dict[str, float]:
    counts = dict.fromkeys(OUTCOMES, 0.0)
    for sample in samples(api, "fearless_shadow_forwards_total"):
        counts[sample.labels["outcome"]] = sample.value
    return counts


def predict_requests(api: Api) -> float:
    series = samples(api, "fearless_http_requests_total")
    return sum(s.value for s in series if s.labels["route"] == "/predict")


def predict(client: httpx.Client, records: list[dict], n: int, request_id: str | None):
    """Request `n`: one to three records; the answer and the request id it was logged under."""
    body = {"records": records[n % 37 : n % 37 + 1 + n % 3]}
    headers = {"X-Request-ID": request_id} if request_id else {}
    answer = client.post("/predict", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert request_id is None or answer.headers["X-Request-ID"] == request_id
    return answer, answer.headers["X-Request-ID"]


def test_the_shadow_logs_each_answered_prediction_under_the_same_id(start, records):
    shadow_port = _free_port()
    # The shadow has the same settings production has, as when started from the same task
    # definition: it points at itself, and must still not forward what it is forwarded.
    shadow_url = f"http://127.0.0.1:{shadow_port}"
    shadow = start("shadow", port=shadow_port, FEARLESS_SHADOW_URL=shadow_url)
    production = start("production", FEARLESS_SHADOW_URL=shadow_url)
    ready(shadow, production)

    with httpx.Client(base_url=production.url, timeout=10) as client:
        sent = [predict(client, records, n, f"client-{n}" if n % 2 else None)[1] for n in range(30)]
        refused = client.post("/predict", json={"records": [{**records[0], "age": "old"}]})
    assert refused.status_code == 422  # not answered 200: not forwarded

    served = logged(production)
    assert ids(production) == set(sent) and len(set(sent)) == 30
    eventually(lambda: logged(shadow).keys() >= served.keys(), "every row in the shadow's log")
    assert logged(shadow) == served  # same ids, inputs and (same bundle) predictions
    eventually(lambda: forwards(production)["sent"] == 30, "30 forwards counted sent")
    assert forwards(production) == {"sent": 30, "failed": 0, "dropped": 0, "skipped": 0}
    eventually(lambda: predict_requests(shadow) == 30, "30 requests counted by the shadow")
    assert forwards(shadow) == {"sent": 0, "failed": 0, "dropped": 0, "skipped": 0}
    metadata = httpx.get(f"{production.url}/metadata", timeout=10).json()
    assert metadata["shadow"] == {"url": shadow_url, "sample": 1.0}
    assert f"forwarding 100% of its predictions to {shadow_url}" in production.output.read_text()


@pytest.mark.parametrize("binary", [False, True])
def test_open_inference_protocol_requests_are_forwarded_too(start, credit_project, binary):
    import tritonclient.http as triton

    shadow = start("shadow")
    production = start("production", FEARLESS_SHADOW_URL=shadow.url)
    ready(shadow, production)
    frame = pd.read_parquet(credit_project / "reference.parquet").head(4)
    client = triton.InferenceServerClient(production.url.removeprefix("http://"))
    inputs = []
    for spec_input in client.get_model_metadata("credit")["inputs"]:
        column = frame[spec_input["name"]]
        values = column.to_numpy(dtype=object if spec_input["datatype"] == "BYTES" else None)
        tensor = triton.InferInput(spec_input["name"], [len(frame)], spec_input["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)

    client.infer("credit", inputs, request_id="oip-client-id")
    made = client.infer("credit", inputs).get_response()["id"]

    served = logged(production)
    assert ids(production) == {"oip-client-id", made} and len(served) == 8
    eventually(lambda: logged(shadow).keys() >= served.keys(), "every row in the shadow's log")
    assert logged(shadow) == served
    eventually(lambda: forwards(production)["sent"] == 2, "2 forwards counted sent")


def test_a_sample_forwards_exactly_the_ids_it_selects(start, records):
    shadow = start("shadow")
    production = start("production", FEARLESS_SHADOW_URL=shadow.url, FEARLESS_SHADOW_SAMPLE="0.5")
    ready(shadow, production)

    with httpx.Client(base_url=production.url, timeout=10) as client:
        sent = [predict(client, records, n, f"sample-{n}" if n % 2 else None)[1] for n in range(40)]

    chosen = {request_id for request_id in sent if sampled(request_id, 0.5)}
    assert 0 < len(chosen) < 40
    eventually(lambda: forwards(production)["sent"] >= len(chosen), "the chosen ids sent")
    assert ids(shadow) == chosen
    assert forwards(production) == {"sent": len(chosen), "failed": 0, "dropped": 0, "skipped": 0}


def test_an_unreachable_shadow_changes_no_answer(start, records):
    closed = _free_port()  # nothing listens there
    production = start("production", FEARLESS_SHADOW_URL=f"http://127.0.0.1:{closed}")
    plain = start("plain")
    ready(production, plain)

    with (
        httpx.Client(base_url=production.url, timeout=10) as client,
        httpx.Client(base_url=plain.url, timeout=10) as reference,
    ):
        for n in range(30):
            answer, _ = predict(client, records, n, f"r-{n}")
            expected, _ = predict(reference, records, n, f"r-{n}")
            assert answer.content == expected.content

    eventually(lambda: sum(forwards(production).values()) == 30, "30 forwards counted")
    counts = forwards(production)
    # The first forward fails; those within the back-off after a failure are skipped.
    assert counts["failed"] >= 1 and counts["failed"] + counts["skipped"] == 30
    assert counts["sent"] == counts["dropped"] == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FEARLESS_SHADOW_SAMPLE", "2"),
        ("FEARLESS_SHADOW_SAMPLE", "abc"),
        ("FEARLESS_SHADOW_URL", "ftp://x"),
    ],
)
def test_a_bad_setting_stops_the_model_api_at_start(bundle, variable, value):
    settings = {"FEARLESS_SHADOW_URL": "http://127.0.0.1:9", variable: value}
    argv = [sys.executable, "-m", "fearless.serving", "--bundle", str(bundle.path)]
    argv += ["--port", str(_free_port())]

    run = subprocess.run(
        argv, env=environment(**settings), capture_output=True, text=True, timeout=120, check=False
    )

    assert run.returncode == 1
    assert f"{variable}={value!r}" in run.stderr
    assert "model API" not in run.stdout  # never started serving
