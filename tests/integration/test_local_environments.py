"""The local backend and production service with real model API processes."""

from datetime import UTC, datetime, timedelta

import httpx
import psutil
import pytest

from fearless.bundles.bundle import build_bundle
from fearless.environments import EnvironmentError_
from fearless.environments.local import LocalEnvironments
from fearless.platform.processes import ProcessHandle
from fearless.production.local import LocalProductionService
from fearless.registry.local import LocalRegistry
from tests.conftest import CREDIT_RECORD

RECORD = CREDIT_RECORD


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, credit_project, credit_challenger):
    registry = LocalRegistry(tmp_path_factory.mktemp("registry"))
    return build_bundle(credit_project, registry), build_bundle(credit_challenger, registry)


def alive(env) -> bool:
    return psutil.pid_exists(ProcessHandle(**env.handle).pid)


def test_provision_serves_logs_and_teardown_is_complete_and_repeatable(tmp_path, bundles):
    backend = LocalEnvironments(tmp_path / "envs", tmp_path / "runs")
    expires = datetime.now(UTC) + timedelta(hours=1)
    env = backend.provision("credit-test1", "candidate", bundles[0], expires)
    assert backend.provision("credit-test1", "candidate", bundles[0], expires) == env  # repeat-safe
    answer = httpx.post(f"{env.url}/predict", json={"records": [RECORD]})
    assert answer.status_code == 200 and answer.json()["digest"] == bundles[0].digest
    assert list(backend.inference_log_dir(env).rglob("*.jsonl"))
    assert [e.release_id for e in backend.list()] == ["credit-test1"]

    removed = backend.teardown("credit-test1")
    assert [e.role for e in removed] == ["candidate"]
    assert backend.list() == [] and not alive(env)
    assert backend.teardown("credit-test1") == []


def test_a_model_api_that_cannot_start_leaves_nothing(tmp_path, bundles):
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(bundles[0].path, broken)
    (broken / "model.skops").write_bytes(b"garbage")
    from fearless.bundles.bundle import Bundle

    # Not through open_bundle (which refuses it): the model API must refuse it itself.
    unchecked = Bundle(path=broken, digest=bundles[0].digest, spec=bundles[0].spec)
    backend = LocalEnvironments(tmp_path / "envs", tmp_path / "runs", ready_timeout_s=60)
    with pytest.raises(EnvironmentError_, match="did not start"):
        backend.provision("credit-bad", "candidate", unchecked, datetime.now(UTC))
    assert backend.list() == []


def test_production_switch_stops_the_old_instance(tmp_path, bundles):
    service = LocalProductionService(tmp_path / "production", tmp_path / "inference")
    first = service.start(bundles[0])
    assert service.switch(first) is None
    second = service.start(bundles[1])
    assert service.switch(second) == first
    assert service.current("credit") == second
    assert (
        not psutil.pid_exists(first.handle.pid)
        or psutil.Process(first.handle.pid).status() == "zombie"
    )
    answer = httpx.post(f"{second.url}/predict", json={"records": [RECORD]})
    assert answer.json()["digest"] == bundles[1].digest
    assert list((tmp_path / "inference" / "credit").rglob("*.jsonl"))
    assert service.stop_all() == ["credit", "credit (front)"]
    assert service.current("credit") is None


def test_a_port_taken_before_the_model_api_binds_it_is_replaced(tmp_path, bundles, monkeypatch):
    """Another server binds the chosen port between the check and the model API's own bind:
    the model API exits "address already in use" and provisioning starts it on a new port."""
    import socket

    from fearless.platform import processes

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    chosen = iter([taken])
    real_free_port = processes.free_port
    monkeypatch.setattr(processes, "free_port", lambda: next(chosen, None) or real_free_port())
    backend = LocalEnvironments(tmp_path / "envs", tmp_path / "runs")
    try:
        env = backend.provision("credit-port", "candidate", bundles[0], datetime.now(UTC))
        assert not env.url.endswith(f":{taken}")
        assert httpx.get(f"{env.url}/ready").status_code == 200
        log = (tmp_path / "runs" / "credit-port" / "logs" / "candidate-api.log").read_text()
        assert "address already in use" in log  # the first start did meet the taken port
    finally:
        backend.teardown("credit-port")
        squatter.close()
