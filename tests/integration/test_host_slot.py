"""The host's slot is a reader-writer lock on one Prefect limit: heavy steps (build,
provisioning, drift) run beside each other, never beside a load test; each waits for the other
and says behind whom. Real server (the session's), real flow runs holding the tags."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Running

from fearless.platform import slots
from fearless.platform.slots import heavy_step_slot, load_test_slot
from fearless.platform.work_pools import POOL_KINDS

SHARED = POOL_KINDS["process"]


@flow(name="slot-probe")
def probe() -> None:
    """Never run: its flow runs only stand for releases holding the slot."""


@pytest.fixture
def releases(platform, monkeypatch):
    """Three running flow runs named like releases, on a host of its own with 2 cores."""
    host = f"probe-{uuid4().hex[:8]}"
    monkeypatch.setattr(slots.socket, "gethostname", lambda: host)
    monkeypatch.setattr(slots.os, "cpu_count", lambda: 2)
    with get_client(sync_client=True) as client:
        runs = [client.create_flow_run(probe, name=f"rel-{n}-{host}") for n in "abc"]
        for run in runs:
            client.set_flow_run_state(run.id, Running(), force=True)
        yield [(run.id, run.name) for run in runs]
        for run in runs:
            client.delete_flow_run(run.id)


def in_thread(body) -> threading.Thread:
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_heavy_steps_run_together_and_a_load_test_waits_for_them(releases):
    (a, a_name), (b, _), (c, _) = releases
    log, seen = [], {}

    def load_test():
        with load_test_slot(SHARED, c, log.append) as wait:
            seen["load test"] = (time.monotonic(), wait)

    with heavy_step_slot(SHARED, a, "build", log.append):
        with heavy_step_slot(SHARED, b, "build", log.append) as beside:
            assert beside.behind == [] and beside.waited_s < 5  # steps share the host
        waiter = in_thread(load_test)
        time.sleep(1.5)
        assert "load test" not in seen, "a load test ran beside a build"
        left = time.monotonic()
    waiter.join(timeout=30)
    started, wait = seen["load test"]
    assert started >= left and wait.behind == [a_name] and wait.waited_s >= 1.5, wait
    assert any(line.startswith("load test: waiting for the load-test slot") for line in log), log


def test_a_heavy_step_waits_for_a_load_test_and_says_behind_whom(releases):
    (a, _), _, (c, c_name) = releases
    log, seen = [], {}
    holding, done = threading.Event(), threading.Event()

    def load_test():
        with load_test_slot(SHARED, c, log.append):
            holding.set()
            done.wait(30)

    holder = in_thread(load_test)
    assert holding.wait(30)

    def drift_check():
        with heavy_step_slot(SHARED, a, "drift check", log.append) as wait:
            seen["drift check"] = (time.monotonic(), wait)

    waiter = in_thread(drift_check)
    time.sleep(1.5)
    assert "drift check" not in seen, "a drift check ran beside a load test"
    with get_client(sync_client=True) as client:  # `fearless status` reads these tags
        assert f"waiting:{slots.host_slot_name()}" in client.read_flow_run(a).tags
        assert f"holds:{slots.host_slot_name()}" in client.read_flow_run(c).tags
    left = time.monotonic()
    done.set()
    for thread in (holder, waiter):
        thread.join(timeout=30)
    started, wait = seen["drift check"]
    assert started >= left and wait.behind == [c_name], wait
    assert wait.waited_s >= 1.5 and wait.describe().endswith(f"behind {c_name}")
    assert (
        f"drift check: waiting for the load-test slot {slots.host_slot_name()} behind {c_name}"
        in log
    )
    with get_client(sync_client=True) as client:  # every hold given back, every tag gone
        assert (
            client.read_global_concurrency_limit_by_name(slots.host_slot_name()).active_slots == 0
        )
        for run_id in (a, c):
            assert not [t for t in client.read_flow_run(run_id).tags if ":" in t]
