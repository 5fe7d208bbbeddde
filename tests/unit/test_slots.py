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
