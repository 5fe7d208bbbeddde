"""One load test at a time on a machine that flow runs share, with nothing heavy beside it, so
releases never measure each other.

On a pool whose flow runs share one host (the embedded default's process pool), a load test
(candidate and champion runs together) holds the host's slot: a strict Prefect global
concurrency limit named after the host, sized from its cores. The steps that keep a core busy
(a build, a provisioning, a drift check) take one unit of the same limit and a load test takes
all of its share (`LOAD_TEST_UNITS`): a reader-writer lock, so those steps run beside each other
but never beside a load test, which waits for them as they wait for it. Measured before: a
release's load test started while two others still built and provisioned had a p95 23% above
the same test alone (`bench/contention.py`).

Where every flow run and model API is a task of its own (ECS), the pool kind says no slot is
needed. A release waiting for the slot says so: in its log, and on its flow run as the tag
`waiting:<slot>`, which `fearless status` shows; a load test carries `holds:<slot>`, a step
beside others `shares:<slot>`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from pydantic import BaseModel

from fearless.platform.work_pools import PoolKind

LOAD_TEST_CORES = 2  # a load test keeps one core busy generating and one answering
LOAD_TEST_UNITS = 8  # a load test takes this many units of the limit, a heavy step one
LEASE_S = 120  # renewed while held; a crashed holder frees the slot this long after
LEASE_TAG = "lease:"
# The names of the limits Fearless takes (each always with a lease; `slot_recount` recounts
# them): the host's load-test slot, each model's promotion slot, the one-resume-at-a-time lock.
HOST_SLOT_PREFIX = "load-test-"  # + the host name
PROMOTION_SLOT_PREFIX = "promote-"  # + the model name (`fearless.production.slot`)
RESUME_LOCK = "fearless-release-resume"  # one unit (`fearless.release.recovery`)
logger = logging.getLogger("fearless.slots")


class SlotWait(BaseModel):
    """What the load test waited for: its slot (None where none is needed), for how long, and
    which releases held it when it asked."""

    slot: str | None = None
    waited_s: float = 0.0
    behind: list[str] = []

    def describe(self) -> str:
        if self.slot is None:
            return "no load-test slot needed: this pool gives each run a machine of its own"
        if not self.behind:
            return f"load-test slot {self.slot} was free"
        return f"waited {self.waited_s:.0f} s for load-test slot {self.slot} behind " + ", ".join(
            self.behind
        )


def host_slot_name(host: str | None = None) -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", (host or socket.gethostname()).lower()).strip("-")
    return f"{HOST_SLOT_PREFIX}{host or 'host'}"


def host_slots(cores: int | None = None) -> int:
    """How many load tests the host bears at once without one disturbing another."""
    return max(1, (cores or os.cpu_count() or 1) // LOAD_TEST_CORES)


def host_units(cores: int | None = None) -> int:
    """The limit's size: each load test it bears at once takes `LOAD_TEST_UNITS` of it."""
    return host_slots(cores) * LOAD_TEST_UNITS


def _holders(client, slot: str, roles: tuple[str, ...] = ("holds",)) -> list[str]:
    """Releases (flow run names) whose running runs hold the slot in one of `roles`."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(any_=[f"{role}:{slot}" for role in roles]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])),
        )
    )
    return sorted({run.name for run in runs})


def _retag(client, flow_run_id: UUID, add=(), drop=()) -> None:
    """One read and one write of the run's tags: `add` and `drop` are tags (str) or tuples."""
    add, drop = ({t} if isinstance(t, str) else set(t) for t in (add, drop))
    tags = set(client.read_flow_run(flow_run_id).tags) - drop
    client.update_flow_run(flow_run_id, tags=sorted(tags | add))


@contextmanager
def load_test_slot(
    kind: PoolKind, flow_run_id: UUID, log: Callable[[str], None]
) -> Iterator[SlotWait]:
    """Hold this host's load-test slot, if `kind` shares hosts, for the body of the `with`:
    no other load test and no heavy step (`heavy_step_slot`) runs meanwhile."""
    with _hold(kind, flow_run_id, log, "load test", "holds") as wait:
        yield wait


@contextmanager
def heavy_step_slot(
    kind: PoolKind, flow_run_id: UUID, step: str, log: Callable[[str], None]
) -> Iterator[SlotWait]:
    """Run `step` (one that keeps a core busy) only while no load test runs on this host, if
    `kind` shares hosts; heavy steps of other releases may run beside it."""
    with _hold(kind, flow_run_id, log, step, "shares") as wait:
        yield wait


@contextmanager
def _hold(
    kind: PoolKind, flow_run_id: UUID, log: Callable[[str], None], what: str, role: str
) -> Iterator[SlotWait]:
    """`role` "holds" (a load test: all its units) or "shares" (a heavy step: one unit)."""
    if not kind.shares_host:
        yield SlotWait()
        return
    from prefect.client.orchestration import get_client

    units = LOAD_TEST_UNITS if role == "holds" else 1
    slot, started = ensure_limit(host_slot_name(), host_units()), time.monotonic()
    with get_client(sync_client=True) as client:
        # A load test waits for load tests and heavy steps; a heavy step for load tests only.
        behind = _holders(client, slot, ("holds", "shares") if role == "holds" else ("holds",))
        if behind:
            log(f"{what}: waiting for the load-test slot {slot} behind {', '.join(behind)}")
            _retag(client, flow_run_id, add=f"waiting:{slot}")
        tags: tuple[str, ...] = ()
        try:
            with leased_slot(slot, units=units) as lease_id:
                tags = (f"{role}:{slot}", f"{LEASE_TAG}{lease_id}")
                _retag(client, flow_run_id, add=tags, drop=f"waiting:{slot}")
                yield SlotWait(slot=slot, waited_s=time.monotonic() - started, behind=behind)
        finally:
            # Only once the slot is given back: a run stopped (cancelled) in between still names
            # its lease, and its final-state hook gives it back (`give_back_slots_of`).
            if tags:
                _retag(client, flow_run_id, drop=tags)


def ensure_limit(name: str, limit: int) -> str:
    """Create the Prefect global concurrency limit `name` (or set its size); its name."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists

    def upsert() -> None:
        with get_client(sync_client=True) as client:
            try:
                client.upsert_global_concurrency_limit_by_name(name, limit=limit)
            except ObjectAlreadyExists:  # another run created it a moment ago
                pass

    _through_server_errors(upsert, f"the limit {name}")
    return name


@contextmanager
def leased_slot(slot: str, timeout_s: float | None = None, units: int = 1) -> Iterator[UUID]:
    """Prefect's strict `concurrency(slot)`, renewed while held, that also says its lease id.

    The id goes on the holder's flow run (`lease:<id>`): when that run's process is lost, its
    resume gives the slot back at once (`release_lost_slot`) instead of after `LEASE_S`.
    `timeout_s`: how long to wait for it (None: for ever); TimeoutError past that. `units`: how
    many of the limit's units it takes.
    """
    from prefect.concurrency._leases import maintain_concurrency_lease
    from prefect.concurrency._sync import (
        acquire_concurrency_slots_with_lease,
        release_concurrency_slots_with_lease,
    )

    acquired = _acquire_through_a_restart(
        lambda wait_s: acquire_concurrency_slots_with_lease(
            [slot], units, timeout_seconds=wait_s, strict=True, lease_duration=LEASE_S
        ),
        timeout_s,
    )
    try:
        with maintain_concurrency_lease(
            acquired.lease_id, LEASE_S, raise_on_lease_renewal_failure=True
        ):
            yield acquired.lease_id
    finally:
        _give_back(lambda: release_concurrency_slots_with_lease(acquired.lease_id), slot)


SERVER_GONE_S = 300.0  # how long a slot is asked for again while the server does not answer
GIVE_BACK_S = 30.0  # how long giving a slot back is tried before its lease is left to expire


def server_trouble(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is the server unreachable or failing (a 5xx), not an
    answer: a restarting server refuses connections, and a busy SQLite answers 500 or 503 to
    the concurrency-limit API (the storm bench failed releases on both)."""
    import httpx

    for err in (exc, exc.__cause__):
        if isinstance(err, httpx.TransportError):
            return True
        if isinstance(err, httpx.HTTPStatusError) and err.response.status_code >= 500:
            return True
    return False


def _through_server_errors(call: Callable, what: str, within_s: float = SERVER_GONE_S):
    """`call()`, asked again while the server is unreachable or failing, for up to `within_s`."""
    started = time.monotonic()
    while True:
        try:
            return call()
        except Exception as exc:
            if not server_trouble(exc) or time.monotonic() - started > within_s:
                raise
            logger.warning("%s: the server failed (%s); asking again", what, exc)
        time.sleep(1.0)


def _give_back(release: Callable, slot: str) -> None:
    """Give a slot back; when the server keeps failing, leave its lease to run out (LEASE_S)
    rather than fail the step that held it."""
    try:
        _through_server_errors(release, f"giving back {slot}", within_s=GIVE_BACK_S)
    except Exception as exc:
        if not server_trouble(exc):
            raise
        logger.warning("%s not given back (%s): its lease ends within %d s", slot, exc, LEASE_S)


def _acquire_through_a_restart(acquire: Callable, timeout_s: float | None):
    """`acquire(wait_s)`, asked again while the server cannot be reached (restarting) or fails
    (a 5xx): Prefect gives up at once on either, and the release failed with it. Each ask
    waits only for what is left of `timeout_s`."""
    started = time.monotonic()

    def for_what_is_left():
        left = None if timeout_s is None else max(0.0, timeout_s - (time.monotonic() - started))
        return acquire(left)

    within_s = min(timeout_s or SERVER_GONE_S, SERVER_GONE_S)
    return _through_server_errors(for_what_is_left, "acquiring a slot", within_s=within_s)


@contextmanager
def lease_on_this_run(lease_id: UUID) -> Iterator[None]:
    """While held, the lease is on the flow run this runs in, if any (`lease:<id>`)."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        yield
        return
    lease, flow_run_id = f"{LEASE_TAG}{lease_id}", context.flow_run.id
    with get_client(sync_client=True) as client:
        _retag(client, flow_run_id, add=lease)
    try:
        yield
    finally:
        with get_client(sync_client=True) as client:
            _retag(client, flow_run_id, drop=lease)


def release_lost_slot(client, tags: list[str]) -> list[str]:
    """Give back the slot a run whose process was lost held (its `lease:<id>` tag); `tags`
    without that run's hold."""
    held = [t for t in tags if t.startswith(LEASE_TAG)]
    for tag in held:
        client.release_concurrency_slots_with_lease(UUID(tag.removeprefix(LEASE_TAG)))
    roles = ("holds:", "shares:", "waiting:")
    return [t for t in tags if t not in held and not t.startswith(roles)]


def give_back_slots_of(flow_run_id: UUID) -> list[str]:
    """Give back every slot the run still holds (its `lease:<id>` tags); the tags dropped. A run
    cancelled mid-step is stopped before its `with` gives the slot back: the next release's
    load test then waited for the lease to run out (LEASE_S, 2 minutes) behind a run that had
    already ended."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        tags = list(client.read_flow_run(flow_run_id).tags)
        rest = release_lost_slot(client, tags)
        if rest != tags:
            client.update_flow_run(flow_run_id, tags=rest)
    return [t for t in tags if t not in rest]
