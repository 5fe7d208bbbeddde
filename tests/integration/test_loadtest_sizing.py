"""Sizing Locust for real: a calibration with our locustfile (against the stub API it starts),
its cache read back without Locust, and a sized run of two processes against the example
credit model's real API."""

from __future__ import annotations

import json
import time

import pytest

from fearless.loadtest import sizing
from fearless.loadtest.sizing import Calibration, SizedLocust, cached_cost, cost_key
from fearless.loadtest.stub_api import stub_api
from fearless.serving.inference_log import read_inference_log
from fearless.spec import LoadProfile
from tests.integration.test_loadtest_fleet import _locust_left, credit_traffic


@pytest.fixture(scope="module")
def traffic(credit_project, tmp_path_factory):
    return credit_traffic(credit_project, tmp_path_factory.mktemp("traffic"), 200)


def test_a_calibration_measures_a_sane_cost_then_the_cache_answers(traffic, tmp_path, monkeypatch):
    first = cached_cost(tmp_path, traffic, 1)

    # CPU seconds of one Locust process per request: ~165 µs on a 2-core Xeon, busy or not.
    assert 50e-6 <= first.cost_per_request_s <= 5e-3, first
    assert first.requests > 1000 and first.key == cost_key(1)
    assert _locust_left() == []

    def no_locust(*args, **kwargs):
        raise AssertionError("the cached cost should have been read, not measured")

    monkeypatch.setattr(sizing, "run_load_test", no_locust)
    assert cached_cost(tmp_path, traffic, 1) == first
    with pytest.raises(AssertionError, match="should have been read"):
        cached_cost(tmp_path, traffic, 1, ttl_s=0)  # expired: it would measure again


def test_the_stub_answers_like_the_model_api(traffic):
    import httpx

    records = [json.loads(line) for line in traffic.read_text().splitlines()[:3]]
    with stub_api(3) as url, httpx.Client(base_url=url) as client:
        assert client.get("/ready").status_code == 200
        answer = client.post("/predict", json={"records": records})
        again = client.post("/predict", json={"records": records})  # the same connection
    assert answer.status_code == again.status_code == 200
    assert len(answer.json()["predictions"]) == 3 and "x-request-id" in answer.headers


def test_a_rate_that_needs_two_processes_runs_with_two(model_api, traffic, tmp_path):
    """The cost is set so that 200 req/s needs two processes (4 ms each, 0.8 of a core), which
    any machine holds: what is under test is the sizing reaching Locust, not this host's speed."""
    url, log_dir = model_api
    cache = tmp_path / "cache"
    cost = Calibration(
        key=cost_key(1), cost_per_request_s=4e-3, measured_at=time.time(), requests=1,
        rps=1, generator_cpu_pct=1, generator_busy_pct=1,
    )  # fmt: skip
    cached_cost(cache, traffic, 1, measure=lambda *_: cost)
    load = LoadProfile(rate=200, duration_s=4)
    generator = SizedLocust(cache, cores=2)
    assert generator.plan(load, traffic).processes == 2

    result = generator.run(url, load, traffic, tmp_path / "out")

    log = (tmp_path / "out" / "locust.log").read_text()
    assert "2 workers connected" in log and "to 2 ready workers" in log, log[-2000:]
    assert result.generator_cores == 2
    assert result.requests > 0 and result.failures == 0, result.top_errors
    # Both workers' requests reached the API; the rate held unless the host starved Locust.
    assert len(read_inference_log(log_dir, "credit")) >= result.requests
    assert result.held_share >= 0.95 or result.generator_busy_pct >= 90, result
    assert _locust_left() == []
