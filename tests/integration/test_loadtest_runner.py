"""Real Locust against a real uvicorn serving a stand-in model API (defined below).

The stand-in reads STANDIN_DELAY_MS and STANDIN_FAIL_EVERY at startup, so one server can be
slow and another fail every n-th request, exercising each verdict path over real HTTP.
"""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fearless.loadtest import runner
from fearless.loadtest.runner import LoadTestError, LoadTestResult, run_load_test
from fearless.loadtest.traffic import write_traffic
from fearless.loadtest.verdict import evaluate_load_test
from fearless.platform.processes import free_port as _free_port
from fearless.spec import LoadProfile, SLOs

app = FastAPI()
_DELAY_S = float(os.environ.get("STANDIN_DELAY_MS", "0")) / 1000
_FAIL_EVERY = int(os.environ.get("STANDIN_FAIL_EVERY", "0"))
_served = 0


@app.get("/ready")
def ready() -> dict:
    return {"ready": True}


@app.post("/predict")
async def predict(request: Request):
    global _served
    records = (await request.json())["records"]
    _served += 1
    number = _served
    if _DELAY_S:
        await asyncio.sleep(_DELAY_S)
    if _FAIL_EVERY and number % _FAIL_EVERY == 0:
        return JSONResponse({"detail": "stand-in failure"}, status_code=500)
    return {"predictions": [{"score": 0.5} for _ in records]}


HERE = Path(__file__).resolve().parent
SHORT = LoadProfile(profile="steady", users=4, spawn_rate=100, duration_s=3, batch_size=2)
SLOS = SLOs(p95_ms=250, p99_ms=500, max_error_rate=0.01, min_rps=1)


def _start_standin(**env: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"{Path(__file__).stem}:app",
            "--app-dir",
            str(HERE),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_ready(proc: subprocess.Popen, url: str, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "stand-in API exited"
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"stand-in API at {url} never became ready")


@pytest.fixture(scope="module")
def standins():
    """A healthy stand-in (10 ms) and a bad one (300 ms, every 4th request fails), started together."""
    servers = {
        "healthy": _start_standin(STANDIN_DELAY_MS="10"),
        "bad": _start_standin(STANDIN_DELAY_MS="300", STANDIN_FAIL_EVERY="4"),
    }
    try:
        for proc, url in servers.values():
            _wait_ready(proc, url)
        yield {name: url for name, (_, url) in servers.items()}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture
def traffic(tmp_path) -> Path:
    records = [{"age": 20 + i, "income": 1000.0 * i, "purpose": "car"} for i in range(50)]
    return write_traffic(records, tmp_path / "traffic.jsonl")


def unjudged(verdict) -> bool:
    """Inconclusive because the machine was busy (the host or the generator) or ran slower,
    and says so."""
    return verdict.inconclusive and verdict.reasons[0].startswith(
        (
            "inconclusive: the host was busy",
            "inconclusive: the load generator",
            "inconclusive: the host ran slower",
        )
    )


def _locust_aggregated(result: LoadTestResult) -> dict[str, str]:
    with open(f"{result.csv_prefix}_stats.csv", newline="") as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")


def test_healthy_api_meets_its_slos(standins, traffic, tmp_path):
    result = run_load_test(standins["healthy"], SHORT, traffic, tmp_path / "out")

    assert result.requests > 0 and result.failures == 0 and result.rps > 0
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert 0 < result.duration_s <= SHORT.duration_s + 0.5  # Locust stops at the duration
    assert 0 < result.generator_cpu_pct <= result.generator_cpu_max_pct
    assert Path(result.report_html).stat().st_size > 0
    assert Path(f"{result.csv_prefix}_stats.csv").is_file()
    # Our count, merged from per-endpoint histograms, agrees with Locust's own total row (its
    # CSV is written a moment before the JSON, missing the last in-flight requests; how the
    # percentiles merge is checked exactly in tests/unit/test_loadtest_verdict.py).
    aggregated = _locust_aggregated(result)
    assert abs(int(aggregated["Request Count"]) - result.requests) <= SHORT.concurrency
    print(
        f"\nstartup overhead {result.wall_s - SHORT.duration_s:.2f} s, {result.rps:.0f} rps, "
        f"generator CPU mean {result.generator_cpu_pct:.0f}% max {result.generator_cpu_max_pct:.0f}%, "
        f"waiting for a CPU {result.generator_cpu_wait_pct:.0f}%"
    )

    # The open model: SHORT asks the default rate, and a healthy API takes all of it.
    assert result.mode == "open" and result.target_rps == SHORT.target_rate == 50
    # Latencies to 1% or finer, from the locustfile's own histogram (a tenth of a millisecond
    # from 10 to 100 ms): the stand-in sleeps 10 ms, so no request is faster.
    assert Path(f"{result.csv_prefix}_latency.json").is_file()
    assert 10.0 <= result.p50_ms and round(result.p50_ms * 10) == result.p50_ms * 10
    assert result.host is not None and result.host.cores >= 1
    verdict = evaluate_load_test(result, SLOS)
    # A healthy API is never failed. On a machine busy with other work the run may only be
    # inconclusive, and then it says why (a passing verdict means it held the rate).
    assert verdict.passed or unjudged(verdict), verdict.reasons


def test_slow_failing_api_fails_on_latency_and_errors(standins, traffic, tmp_path):
    result = run_load_test(standins["bad"], SHORT, traffic, tmp_path / "out")

    assert 0.15 <= result.error_rate <= 0.35
    assert result.p95_ms >= 300
    assert any("HTTP 500" in e for e in result.top_errors)
    verdict = evaluate_load_test(result, SLOS)
    assert not verdict.passed and (not verdict.inconclusive or unjudged(verdict))
    failed = {c.name for c in verdict.checks if not c.ok}
    assert {"p95_ms", "error_rate"} <= failed
    # 4 users waiting 300 ms each cannot carry 50 req/s: the API did not hold the rate.
    judged = [r for r in verdict.reasons if not r.startswith("inconclusive:")]
    assert judged[0].startswith("the API held only"), verdict.reasons
    assert any("HTTP 500" in reason for reason in verdict.reasons)


def test_load_generator_can_use_several_processes(standins, traffic, tmp_path):
    result = run_load_test(standins["healthy"], SHORT, traffic, tmp_path / "out", processes=2)

    assert result.requests > 0 and result.failures == 0 and result.generator_cores == 2
    assert Path(result.report_html).is_file()


def test_dead_target_is_a_clear_error(traffic, tmp_path):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(LoadTestError, match="not answering"):
        run_load_test(url, SHORT, traffic, tmp_path / "out")


def test_locust_that_cannot_start_is_a_clear_error(standins, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(LoadTestError, match="no traffic records"):
        run_load_test(standins["healthy"], SHORT, empty, tmp_path / "out")


def test_locust_running_past_its_timeout_is_killed(standins, traffic, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "START_MARGIN_S", 0.5)
    one_second = SHORT.model_copy(update={"duration_s": 1})
    with pytest.raises(LoadTestError, match="ran past"):
        run_load_test(standins["healthy"], one_second, traffic, tmp_path / "out")
    assert _locust_left() == []


def _locust_left() -> list[psutil.Process]:
    """Locust processes this test process started that still run. A child that has exited
    (gone, or a zombie not yet reaped) runs nothing, and asking its command line raises."""
    left = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "locust" in proc.cmdline():
                left.append(proc)
        except psutil.Error:
            continue
    return left
