"""One promotion slot per model: a strict one-slot Prefect concurrency limit.

Whatever moves a model's production (a promotion, its bake window, a rollback by hand or by
flow) holds the slot, so two of them never interleave.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

WAIT_S = 600


def slot_name(model: str) -> str:
    from fearless.platform.slots import PROMOTION_SLOT_PREFIX

    return f"{PROMOTION_SLOT_PREFIX}{model}"


def ensure_slot(model: str) -> str:
    """Create the model's one-slot limit if it is not there yet; its name."""
    from fearless.platform.slots import ensure_limit

    return ensure_limit(slot_name(model), 1)


@contextmanager
def promotion_slot(model: str, wait_s: float = WAIT_S) -> Iterator[None]:
    """Hold the model's slot (strict: a missing limit is an error, not a warning).

    Held in a flow run, its lease is on the run: a release whose process was lost mid-bake
    gets it back when it is resumed, instead of waiting for the lost lease to run out.
    """
    from fearless.platform.slots import lease_on_this_run, leased_slot

    with leased_slot(ensure_slot(model), timeout_s=wait_s) as lease_id, lease_on_this_run(lease_id):
        yield
