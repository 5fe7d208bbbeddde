"""One promotion slot per model: a strict one-slot Prefect concurrency limit.

Whatever moves a model's production (a promotion, its bake window, a rollback by hand or by
flow) holds the slot, so two of them never interleave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

WAIT_S = 600


def slot_name(model: str) -> str:
    return f"promote-{model}"


def ensure_slot(model: str) -> str:
    """Create the model's one-slot limit if it is not there yet; its name."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists

    name = slot_name(model)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
        except ObjectAlreadyExists:  # another release created it a moment ago
            pass
    return name


@contextmanager
def promotion_slot(model: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the model's slot (strict: a missing limit is an error, not a warning)."""
    from prefect.concurrency.sync import concurrency

    with concurrency(ensure_slot(model), occupy=1, strict=True, timeout_seconds=wait_s):
        yield
