"""`fearless serve PATH --port N` as a real process: ready, predicts, logs, ships logs, stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pandas as pd

from fearless.aws.inference_logs import S3Location, sync_inference_logs
from fearless.platform.processes import free_port as _free_port
from fearless.serving.inference_log import read_inference_log

READY_TIMEOUT_S = 60
FEARLESS = Path(sys.executable).with_name("fearless")


def serve_and_predict(project: Path, tmp_path: Path, env: dict | None = None):
    """Run `fearless serve`, score three reference records, stop it with SIGINT."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port, log_dir = _free_port(), tmp_path / "inference"
    argv = [str(FEARLESS), "serve", str(project), "--port", str(port), "--log-dir", str(log_dir)]
    output = tmp_path / "serve.log"
    with output.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    records = pd.read_parquet(project / "reference.parquet").head(3).to_dict("records")
    try:
        url, deadline, ready = f"http://127.0.0.1:{port}", time.monotonic() + READY_TIMEOUT_S, None
        while ready is None and time.monotonic() < deadline:
            assert process.poll() is None, output.read_text()
            try:
                ready = httpx.get(f"{url}/ready", timeout=1)
            except httpx.HTTPError:
                time.sleep(0.1)
        assert ready is not None and ready.json() == {"ready": True}, output.read_text()
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=10)
        metadata = httpx.get(f"{url}/metadata", timeout=10).json()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert answer.status_code == 200, answer.text
    assert process.returncode == 0, output.read_text()
    return answer.json(), metadata, log_dir


def test_fearless_serve_serves_a_model_project(credit_project, tmp_path):
    answer, metadata, log_dir = serve_and_predict(credit_project, tmp_path)

    assert answer["digest"] == "dev" and len(answer["predictions"]) == 3
    assert metadata["scoring"]["path"] == "numpy"
    logged = read_inference_log(log_dir, "credit")
    assert logged["prediction"].tolist() == [p["prediction"] for p in answer["predictions"]]


def test_with_an_s3_location_the_model_api_ships_its_log_there(
    credit_project, tmp_path, moto_endpoint
):
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="fearless-logs")
    location = "s3://fearless-logs/inference/release-1/candidate"
    env = {
        "FEARLESS_INFERENCE_LOG_S3": location,
        "FEARLESS_AWS_ENDPOINT_URL": moto_endpoint,
        "FEARLESS_RUN_ID": "release-1",
    }
    answer, _, _ = serve_and_predict(credit_project, tmp_path / "served", env)

    fetched = sync_inference_logs(s3, S3Location.parse(location), tmp_path / "fetched")
    assert fetched, "the model API shipped nothing to S3"
    logged = read_inference_log(tmp_path / "fetched", "credit")
    assert logged["prediction"].tolist() == [p["prediction"] for p in answer["predictions"]]
