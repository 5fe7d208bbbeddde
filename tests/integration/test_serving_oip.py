"""The model API as a real uvicorn process, driven by tritonclient and fuzzed by schemathesis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fearless.bundles.model_files import load_model_file
from tests.integration.conftest import stop_processes
from tests.integration.test_serving_process import _free_port, _wait_ready

FUZZ_EXAMPLES = 40  # per operation; keeps the whole fuzz run well under a minute


@pytest.fixture(scope="module")
def api_url(credit_project, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oip")
    port, output = _free_port(), tmp / "api.log"
    argv = [sys.executable, "-m", "fearless.serving", "--spec", str(credit_project)]
    argv += ["--port", str(port), "--log-dir", str(tmp / "inference")]
    with output.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, output)
        yield url
    finally:
        stop_processes(process)


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_scores_like_the_model(api_url, credit_project, binary):
    import tritonclient.http as triton

    frame = pd.read_parquet(credit_project / "reference.parquet").head(8)
    client = triton.InferenceServerClient(api_url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("credit")
    metadata = client.get_model_metadata("credit")
    inputs = []
    for spec_input in metadata["inputs"]:
        column = frame[spec_input["name"]]
        values = column.to_numpy(dtype=object if spec_input["datatype"] == "BYTES" else None)
        tensor = triton.InferInput(spec_input["name"], [len(frame)], spec_input["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)

    result = client.infer("credit", inputs)

    model = load_model_file(credit_project / "model.skops", trust_pickle=False)
    np.testing.assert_array_equal(result.as_numpy("prediction"), model.predict(frame))
    np.testing.assert_allclose(result.as_numpy("score"), model.predict_proba(frame)[:, 1])


def test_tritonclient_sees_a_bad_tensor_as_an_error(api_url):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(api_url.removeprefix("http://"))
    tensor = triton.InferInput("age", [2], "INT64")
    tensor.set_data_from_numpy(np.array([30, 40], dtype=np.int64))

    with pytest.raises(InferenceServerException, match="missing inputs"):
        client.infer("credit", [tensor])


def test_no_input_of_any_shape_answers_500(api_url):
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    failures, calls = [], []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/predict" for op in operations)
    assert any(op.path == "/v2/models/{name}/infer" for op in operations)

    for operation in operations:
        calls.append(_fuzz(operation, api_url, failures))

    assert sum(calls) > len(operations) and failures == []


def _fuzz(operation, api_url: str, failures: list) -> int:
    """Send up to FUZZ_EXAMPLES generated requests to one operation; note any 5xx; the count."""
    from hypothesis import HealthCheck, given, settings

    @given(case=operation.as_strategy())
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        sent.append(1)
        response = case.call(base_url=api_url, timeout=10)
        if response.status_code >= 500:
            failures.append((operation.label, response.status_code, response.text[:300]))

    sent: list[int] = []
    fuzz()
    return len(sent)
