"""A Locust master and two worker processes, with our locustfile and LoadTestShape, against the
example credit model's real API: the distributed protocol the AWS load generator will use."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import pytest

from fearless.bundles.bundle import read_reference
from fearless.loadtest.fleet import LocalFleet, LocustFleet
from fearless.loadtest.runner import LoadTestError, run_load_test
from fearless.loadtest.traffic import synthesize_traffic, write_traffic
from fearless.serving.inference_log import read_inference_log
from fearless.spec import LoadProfile, load_spec
from tests.integration.test_loadtest_runner import _free_port, _locust_left

# The closed model: the distributed protocol is what is under test, not a rate.
SHORT = LoadProfile(
    mode="closed", profile="steady", users=4, spawn_rate=100, duration_s=3, batch_size=2
)


def credit_traffic(project, folder, records: int):
    """A traffic file of `records` drawn from the example's reference data."""
    spec = load_spec(project / "fearless.yaml")
    reference = read_reference(spec, project / spec.reference_data)
    return write_traffic(synthesize_traffic(reference, spec, records, 0), folder / "traffic.jsonl")


@pytest.fixture(scope="module")
def traffic(credit_project, tmp_path_factory):
    return credit_traffic(credit_project, tmp_path_factory.mktemp("traffic"), 100)


def test_a_master_and_two_workers_drive_the_model_api(model_api, traffic, tmp_path):
    url, log_dir = model_api

    result = LocalFleet(workers=2).run(url, SHORT, traffic, tmp_path / "out")

    log = (tmp_path / "out" / "locust.log").read_text()
    assert "Shape worker starting" in log  # the master plays our LoadTestShape...
    assert "users at 100.00 spawn rate to 2 ready workers" in log, log[-2000:]  # ...for both
    assert result.requests > 0 and result.failures == 0, result.top_errors
    assert 2 <= result.duration_s <= 4.5  # the master played the profile's 3 s shape
    assert result.generator_cores == 2 and result.generator_cpu_pct > 0
    served = read_inference_log(log_dir, "credit")
    # Every request the master counted reached the API and was logged, 2 records each.
    assert len(served) >= result.requests * SHORT.batch_size
    assert _locust_left() == []


@dataclass(frozen=True)
class OneWorkerShort:
    """Plans two workers but starts one: the master must give up, not wait forever."""

    cores: int = 2

    def command(self, argv: list[str]) -> list[str]:
        plan = LocustFleet(2, master_port=_free_port(), wait_for_workers_s=2)
        master = [*argv, *plan.master_args(), "--master-bind-host", "127.0.0.1"]
        return ["/bin/sh", "-c", f"{shlex.join(plan.worker_argv())} & exec {shlex.join(master)}"]


def test_a_fleet_missing_a_worker_fails_clearly(model_api, traffic, tmp_path):
    url, _ = model_api
    with pytest.raises(LoadTestError, match="locust failed|no results"):
        run_load_test(url, SHORT, traffic, tmp_path / "out", launcher=OneWorkerShort())
    assert _locust_left() == []
