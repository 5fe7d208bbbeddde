"""Production cannot be pointed anywhere but a model API Fearless started for the bundle.

The old front took `PUT /-/front/upstream {"url": ...}` from any local process, checked no Host
header (so a DNS-rebinding page could send it too), and buffered whole bodies. The nginx front
has no admin endpoint: what it forwards to is a flag file in its own folder, set by a switch
that first checks the instance is a model API in one of the front's slots, running, listening
on the slot's port and serving the bundle's digest. Bodies over the model API's limit are
refused before anything is buffered.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from fearless.platform import processes
from fearless.production.front import FrontError
from fearless.production.local import LocalProductionService, ProductionInstance


@pytest.fixture
def service(tmp_path: Path):
    service = LocalProductionService(tmp_path / "production", tmp_path / "inference")
    try:
        yield service
    finally:
        service.stop_all()


@pytest.fixture
def impostor(tmp_path: Path, service):
    """A process that is not a model API, listening on the front's blue slot."""
    port = service.front("credit").slots["blue"]
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    handle = processes.spawn(argv, tmp_path / "impostor.log", cwd=tmp_path)
    try:
        processes.wait_until_ready(f"http://127.0.0.1:{port}/", handle, 30)
        yield handle, port
    finally:
        processes.stop(handle)


def instance(service, handle, upstream: str, slot: str = "blue") -> ProductionInstance:
    url = service.front("credit").url
    return ProductionInstance(
        model="credit",
        digest="sha256:" + "a" * 64,
        url=url,
        handle=handle,
        upstream=upstream,
        slot=slot,
    )


def refused(service, forged: ProductionInstance, why: str) -> None:
    with pytest.raises(FrontError, match=why):
        service.switch(forged)
    assert service.current("credit") is None
    assert service.front("credit").handle is None  # no front was started for it


def test_a_switch_to_any_url_is_refused(service, impostor):
    handle, port = impostor
    refused(service, instance(service, handle, "http://203.0.113.7:80"), "not in a slot")
    refused(service, instance(service, handle, f"http://127.0.0.1:{port}", "red"), "not in a slot")
    green = service.front("credit").slots["green"]
    refused(
        service, instance(service, handle, f"http://127.0.0.1:{green}", "blue"), "not in a slot"
    )


def test_a_switch_to_a_process_that_is_not_the_bundles_model_api_is_refused(service, impostor):
    handle, port = impostor
    upstream = f"http://127.0.0.1:{port}"
    refused(service, instance(service, handle, upstream), "its model API serves")
    green = service.front("credit").slots["green"]
    in_green = instance(service, handle, f"http://127.0.0.1:{green}", "green")
    refused(service, in_green, f"does not listen on the slot's port {green}")
    processes.stop(handle)
    refused(service, instance(service, handle, upstream), "not running")


@pytest.mark.usefixtures("impostor")
def test_the_front_has_no_admin_endpoint_and_bounds_bodies(service):
    """A rebinding page or a local process talking to the front reaches the model API's routes
    only; where production goes does not change."""
    service.fronts.nginx("credit").point("blue")
    with service.fronts.locked("credit"):
        front = service.fronts.running("credit").url
    for method in ("GET", "PUT", "POST"):
        answer = httpx.request(
            method,
            f"{front}/-/front/upstream",
            json={"url": "http://203.0.113.7"},
            headers={"Host": "rebind.evil.example"},
        )
        assert "Error response" in answer.text  # answered by the slot's process, not the front
    assert service.fronts.nginx("credit").active() == "blue"
    assert httpx.get(f"{front}/").status_code == 200  # still the blue slot's process
    big = httpx.post(f"{front}/predict", content=b"x" * (3 * 1024 * 1024))
    assert big.status_code == 413
