"""Load tests on a shared machine take turns: which pools need the slot, its name and size."""

from __future__ import annotations

from uuid import uuid4

from fearless.platform.slots import SlotWait, host_slot_name, host_slots, load_test_slot
from fearless.platform.work_pools import POOL_KINDS


def test_only_pools_whose_runs_share_a_host_take_the_slot():
    assert POOL_KINDS["process"].shares_host and not POOL_KINDS["ecs"].shares_host
    logged = []
    with load_test_slot(POOL_KINDS["ecs"], uuid4(), logged.append) as slot:
        pass  # no server is asked: nothing to wait for
    assert slot == SlotWait() and logged == []
    assert slot.describe().startswith("no load-test slot needed")


def test_the_slot_is_named_after_the_host_and_sized_from_its_cores():
    assert host_slot_name("Build_Box.example.com") == "load-test-build-box-example-com"
    assert [host_slots(cores) for cores in (1, 2, 3, 8)] == [1, 1, 1, 4]


def test_a_wait_says_how_long_and_behind_whom():
    wait = SlotWait(slot="load-test-box", waited_s=12.4, behind=["credit-1234"])
    assert wait.describe() == "waited 12 s for load-test slot load-test-box behind credit-1234"
    assert SlotWait(slot="load-test-box").describe() == "load-test slot load-test-box was free"


def test_status_shows_a_release_waiting_for_the_slot_behind_its_holder():
    from uuid import uuid4

    from fearless.commands.status import release_line
    from fearless.release.listing import ReleaseRun

    def run(name, *tags):
        return ReleaseRun(id=uuid4(), name=name, state_name="Running", tags=list(tags))

    holder = run("credit-1234", "holds:load-test-box", "model:credit")
    waiter = run("fraud-5678", "waiting:load-test-box")
    holders = {"load-test-box": holder.name}
    assert release_line(waiter, holders).endswith(
        "waiting for the load-test-box slot behind credit-1234"
    )
    assert "waiting" not in release_line(holder, holders)


def _answered(status: int):
    import httpx

    request = httpx.Request("POST", "http://server/api/v2/concurrency_limits/decrement-with-lease")
    response = httpx.Response(status, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def test_slot_calls_ride_out_a_failing_server_but_not_a_refusal(monkeypatch):
    """A busy SQLite answers the concurrency-limit API 500 or 503: asked again; a 4xx is an
    answer. Giving a slot back that the server keeps failing leaves its lease to run out."""
    import pytest
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError

    from fearless.platform import slots

    monkeypatch.setattr(slots.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConcurrencySlotAcquisitionError("failed") from _answered(500)
        return "lease"

    assert slots._acquire_through_a_restart(lambda wait_s: flaky(), None) == "lease"
    assert len(calls) == 3
    assert slots.server_trouble(_answered(503)) and not slots.server_trouble(_answered(404))

    def refused():
        raise ConcurrencySlotAcquisitionError("no such limit") from _answered(404)

    with pytest.raises(ConcurrencySlotAcquisitionError):
        slots._acquire_through_a_restart(lambda wait_s: refused(), None)

    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(slots.time, "monotonic", lambda: next(clock))
    asked, calls[:] = [], []

    def flaky_within(wait_s):
        asked.append(wait_s)
        return flaky()

    # Each ask waits only for what is left of the timeout, not the whole of it again.
    assert slots._acquire_through_a_restart(flaky_within, 100) == "lease"
    assert asked == sorted(asked, reverse=True) and asked[0] < 100 and asked[-1] < asked[0]

    def always_failing():
        raise _answered(500)

    slots._give_back(always_failing, "load-test-box")  # logged, not raised

    def wrong():
        raise ValueError("not the server's trouble")

    with pytest.raises(ValueError):
        slots._give_back(wrong, "load-test-box")


def test_the_embedded_server_tells_slot_waiters_to_ask_again_within_seconds(monkeypatch):
    """Prefect's Retry-After for a refused slot goes up to 30 s by default: a freed slot sat
    idle while its waiters slept. The embedded server's environment caps it, under the name
    Prefect's settings read."""
    from prefect.settings import Settings as PrefectSettings

    from fearless.platform.server import SLOT_RETRY_MAX_S, server_only_env
    from fearless.settings import Settings

    env = server_only_env(Settings())
    key = "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS"
    monkeypatch.setenv(key, env[key])
    read = PrefectSettings().server.concurrency.maximum_concurrency_slot_wait_seconds
    assert read == SLOT_RETRY_MAX_S <= 5
