"""`fearless serve PATH --port N` as a real process: ready, predicts, logs, stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

from fearless.serving.inference_log import read_inference_log

READY_TIMEOUT_S = 60
FEARLESS = Path(sys.executable).with_name("fearless")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fearless_serve_serves_a_model_project(credit_project, tmp_path):
    port, log_dir = _free_port(), tmp_path / "inference"
    argv = [str(FEARLESS), "serve", str(credit_project), "--port", str(port)]
    output = tmp_path / "serve.log"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [*argv, "--log-dir", str(log_dir)], stdout=out, stderr=subprocess.STDOUT
        )
    records = pd.read_parquet(credit_project / "reference.parquet").head(3).to_dict("records")
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
    assert answer.json()["digest"] == "dev" and len(answer.json()["predictions"]) == 3
    assert metadata["scoring"]["path"] == "numpy"
    assert process.returncode == 0, output.read_text()
    logged = read_inference_log(log_dir, "credit")
    assert logged["prediction"].tolist() == [p["prediction"] for p in answer.json()["predictions"]]
