"""A work pool's concurrency limit holds where a run takes its slot (the move into Pending), not
only in the query that hands runs to workers: a run that finds the pool full waits Scheduled in
its queue, and runs proposed at the same moment never take more slots than the limit. Real
server (the session's, on SQLite; the PostgreSQL e2e test runs `race_to_pending` on its own)."""

from __future__ import annotations

import contextvars
import threading
from contextlib import contextmanager
from uuid import uuid4

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.states import Completed, Pending, Running, Scheduled

from fearless.platform.pool_limit import AWAITING_SLOT


@flow(name="pool-limit-probe")
def probe() -> None:
    """Never run: its flow runs only take and give back the pool's slots."""


@contextmanager
def probe_pool(client, limit: int, queues: int):
    """A pool of its own that no worker polls, with `queues` queues, one run Scheduled in each."""
    name = f"limit-probe-{uuid4().hex[:8]}"
    client.create_work_pool(WorkPoolCreate(name=name, type="process", concurrency_limit=limit))
    runs = []
    try:
        for index in range(queues):
            queue = f"{name}-{index}"
            client.create_work_queue(name=queue, work_pool_name=name)
            runs.append(
                client.create_flow_run(
                    probe, state=Scheduled(), work_pool_name=name, work_queue_name=queue
                )
            )
        yield runs
    finally:
        for run in runs:
            client.delete_flow_run(run.id)
        client.delete_work_pool(name)


def race_to_pending(runs) -> list[str]:
    """Every run proposed Pending at once, each from a client of its own (in this context's
    Prefect settings); the state names the server gave back, in the runs' order."""
    start = threading.Barrier(len(runs))
    given: dict[int, str] = {}

    def propose(index: int, run) -> None:
        with get_client(sync_client=True) as own:
            start.wait()
            given[index] = own.set_flow_run_state(run.id, Pending()).state.name

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(propose, *pair))
        for pair in enumerate(runs)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [given.get(index, "no answer") for index in range(len(runs))]


def test_a_run_finding_its_pool_full_waits_scheduled_until_a_slot_is_free(platform):
    with get_client(sync_client=True) as client, probe_pool(client, limit=1, queues=2) as runs:
        first, second = runs
        assert client.set_flow_run_state(first.id, Pending()).state.name == "Pending"
        refused = client.set_flow_run_state(second.id, Pending())
        assert refused.state.name == AWAITING_SLOT and refused.state.is_scheduled()
        assert "runs 1 at once" in refused.details.reason, refused.details
        # Running still holds the slot; a finished run gives it back.
        client.set_flow_run_state(first.id, Running())
        assert client.set_flow_run_state(second.id, Pending()).state.name == AWAITING_SLOT
        client.set_flow_run_state(first.id, Completed())
        assert client.set_flow_run_state(second.id, Pending()).state.name == "Pending"


def test_runs_proposed_at_once_never_take_more_slots_than_the_limit(platform):
    with get_client(sync_client=True) as client:
        for _ in range(3):
            with probe_pool(client, limit=2, queues=4) as runs:
                names = race_to_pending(runs)
                assert sorted(names) == [AWAITING_SLOT] * 2 + ["Pending"] * 2, names


def test_a_pool_without_a_limit_lets_every_run_take_a_slot(platform):
    with get_client(sync_client=True) as client, probe_pool(client, limit=None, queues=3) as runs:
        assert race_to_pending(runs) == ["Pending"] * 3
