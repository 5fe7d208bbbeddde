"""At the embedded server's start, each Fearless slot's count is set from the leases on disk.

Prefect takes a slot in two writes: it counts the units in the database, commits, and only then
writes the lease (a file, `PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE`). A server killed between
the two left the units counted with no lease for its repossessor to expire: the host's slot
stayed taken for good and every later release waited for it (the fault test that restarts the
server mid-provisioning hung so, 1 run in 12). Giving back has the mirror gap (count down, then
the lease removed). The leases are what holders renew and what the repossessor expires, so on
start, before any request, each of our limits counts exactly the units its leases hold.

Only Fearless's own limits are recounted: another limit may be counted without leases (a rate
limit, Prefect's plain increment), and its count is not ours to set.
"""

from __future__ import annotations

import logging
from collections import Counter
from uuid import UUID

from fearless.platform.slots import HOST_SLOT_PREFIX, PROMOTION_SLOT_PREFIX, RESUME_LOCK

logger = logging.getLogger("fearless.slots")

# The limits Fearless takes, always with a lease: named in `fearless.platform.slots`.
OUR_LIMITS = (HOST_SLOT_PREFIX, PROMOTION_SLOT_PREFIX, RESUME_LOCK)


def is_ours(name: str) -> bool:
    return name.startswith(OUR_LIMITS)


async def leased_units(storage) -> Counter[UUID]:
    """Units held per limit id by every lease on disk, live or expired but not yet revoked
    (the repossessor counts an expired one down later, so it is still counted now)."""
    held: Counter[UUID] = Counter()
    ids = set(await storage.read_expired_lease_ids(limit=1_000_000))
    offset = 0
    while batch := await storage.read_active_lease_ids(limit=1000, offset=offset):
        ids.update(batch)
        offset += len(batch)
    for lease_id in ids:
        lease = await storage.read_lease(lease_id)
        if lease is not None and lease.metadata is not None:
            for limit_id in lease.resource_ids:
                held[limit_id] += lease.metadata.slots
    return held


async def recount_slots() -> list[str]:
    """Set each of our limits' count to what its leases hold; what was changed, said."""
    from prefect.server.concurrency.lease_storage import get_concurrency_lease_storage
    from prefect.server.database import provide_database_interface
    from prefect.server.models import concurrency_limits_v2 as limits_v2
    from prefect.server.schemas.actions import ConcurrencyLimitV2Update

    held = await leased_units(get_concurrency_lease_storage())
    changed = []
    db = provide_database_interface()
    async with db.session_context(begin_transaction=True) as session:
        for limit in await limits_v2.read_all_concurrency_limits(session, limit=None, offset=0):
            counted, units = limit.active_slots, held.get(limit.id, 0)
            if is_ours(limit.name) and counted != units:
                await limits_v2.update_concurrency_limit(
                    session, ConcurrencyLimitV2Update(active_slots=units), limit.id
                )
                changed.append(f"{limit.name}: {counted} -> {units} (its leases)")
    for line in changed:
        logger.warning("slot recounted at start: %s", line)
    return changed


def recount_before_serving() -> list[str]:
    """`recount_slots` on a loop of its own, before the server takes a request. A database
    that cannot be read yet (new, or awaiting migrations) has no count to fix: said, not
    raised, so the server still starts."""
    import asyncio

    try:
        return asyncio.run(recount_slots())
    except Exception as exc:  # noqa: BLE001 - a recount must never stop the server starting
        new_database = "no such table" in str(exc) or "does not exist" in str(exc)
        level = logging.INFO if new_database else logging.WARNING
        logger.log(level, "slots not recounted at start: %s", str(exc).splitlines()[0])
        return []
