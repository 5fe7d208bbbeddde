"""`python -m fearless.serving` as a real process: real uvicorn, real HTTP, real log files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from fearless.platform.processes import free_port as _free_port
from fearless.serving.inference_log import read_inference_log
from tests.integration.conftest import stop_processes

READY_TIMEOUT_S = 60


@dataclass
class Served:
    url: str
    process: subprocess.Popen
    log_dir: Path
    output: Path


def _wait_ready(url: str, process: subprocess.Popen, output: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            pytest.fail(f"model API exited with {process.returncode}:\n{output.read_text()}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"model API not ready after {READY_TIMEOUT_S} s:\n{output.read_text()}")


@pytest.fixture
def served(credit_project, tmp_path):
    port, log_dir, output = _free_port(), tmp_path / "inference", tmp_path / "api.log"
    argv = [
        sys.executable,
        "-m",
        "fearless.serving",
        "--spec",
        str(credit_project / "fearless.yaml"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-dir",
        str(log_dir),
    ]
    with output.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process, output)
        yield Served(url=url, process=process, log_dir=log_dir, output=output)
    finally:
        stop_processes(process)


def test_the_process_serves_logs_and_stays_quiet(served, credit_project):
    records = pd.read_parquet(credit_project / "reference.parquet").head(5).to_dict("records")

    with httpx.Client(base_url=served.url, timeout=10) as client:
        answer = client.post("/predict", json={"records": records})
        single = client.post("/predict", json={"records": records[:1]})
        rejected = client.post("/predict", json={"records": [{**records[0], "age": "old"}]})
        metadata = client.get("/metadata").json()

    assert answer.status_code == 200 and single.status_code == 200
    assert answer.json()["digest"] == "dev" and len(answer.json()["predictions"]) == 5
    assert rejected.status_code == 422
    assert metadata["name"] == "credit"

    [log_file] = (served.log_dir / "credit").glob(f"*/{served.process.pid}-*.jsonl")
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert len(lines) == 6
    assert [line["prediction"] for line in lines[:5]] == [
        p["prediction"] for p in answer.json()["predictions"]
    ]
    assert len(read_inference_log(served.log_dir, "credit")) == 6

    served.process.terminate()
    served.process.wait(timeout=10)
    # One line at start, so a crash's log tail says what ran; nothing per request.
    assert served.output.read_text() == f"model API credit dev on {served.url}\n"
