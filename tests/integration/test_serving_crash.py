"""A model API killed (SIGKILL) under concurrent load has logged every answer it sent."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pandas as pd

from fearless.log_files import log_files, read_log_file
from fearless.platform.processes import free_port as _free_port
from fearless.serving.inference_log import InferenceLog

READY_TIMEOUT_S = 60
CLIENTS = 16


def _wait_ready(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"model API exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"model API not ready after {READY_TIMEOUT_S} s")


async def _load_until_killed(url: str, records: list[dict], process: subprocess.Popen) -> dict:
    """Concurrent clients post until the server dies; SIGKILL once enough were answered, from
    inside the loop, so requests are in flight when it lands. The answers acknowledged."""
    acknowledged: dict[str, list] = {}

    async def client(number: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for sent in range(10_000):
                request_id = f"c{number}-{sent}"
                body = {"records": [records[(number + sent) % len(records)]]}
                try:
                    answer = await http.post(
                        "/predict", json=body, headers={"X-Request-ID": request_id}
                    )
                except httpx.HTTPError:
                    return  # the server is gone
                assert answer.status_code == 200, answer.text
                acknowledged[request_id] = answer.json()["predictions"]
                if len(acknowledged) >= 300 and process.poll() is None:
                    os.kill(process.pid, signal.SIGKILL)

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return acknowledged


def _logged(log_dir) -> dict[str, dict]:
    """{request id: its prediction and score} over every file of the log (Parquet and JSON)."""
    logged = {}
    for path in log_files(log_dir, "credit"):
        for row in read_log_file(path, ["request_id", "prediction", "score"]).to_pylist():
            logged[row.pop("request_id")] = row
    return logged


def test_a_killed_server_has_logged_every_acknowledged_prediction(credit_project, tmp_path):
    port, log_dir = _free_port(), tmp_path / "inference"
    argv = [sys.executable, "-m", "fearless.serving", "--spec", str(credit_project)]
    # Small segments: the kill lands with some compacted into Parquet, one being written
    argv += ["--port", str(port), "--log-dir", str(log_dir), "--log-segment-bytes", "20000"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = pd.read_parquet(credit_project / "reference.parquet").head(50).to_dict("records")
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, process)
        acknowledged = asyncio.run(_load_until_killed(url, records, process))
    finally:
        process.kill()
        process.wait(timeout=10)

    assert process.returncode == -signal.SIGKILL
    assert list(log_dir.glob("credit/*/*.parquet")), "no segment was compacted before the kill"
    orphans = list(log_dir.glob(f"credit/*/{process.pid}-*.jsonl"))
    assert orphans, "the killed process left no open segment"
    logged = _logged(log_dir)
    # The model's next writer compacts the segments the killed process left
    later = InferenceLog(log_dir, "credit", "dev")
    later.append("later", [{"age": 1}], [{"prediction": 0, "score": 0.5}], 1.0)
    later.close()
    assert not any(p.exists() for p in orphans)
    assert _logged(log_dir) == {**logged, "later": {"prediction": 0, "score": 0.5}}
    assert len(acknowledged) >= 300
    missing = [rid for rid in acknowledged if rid not in logged]
    assert missing == [], f"{len(missing)} acknowledged predictions not in the log"
    assert all(acknowledged[rid] == [logged[rid]] for rid in acknowledged)
