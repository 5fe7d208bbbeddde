"""Teardown: the pipeline's last step, and its final-state hook when a run ends early."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task

from fearless.composition import build_services
from fearless.platform.slots import give_back_slots_of
from fearless.release.runs import finish_release

logger = logging.getLogger("fearless.teardown")


@task(name="teardown-env")
def teardown_env(release_id: str) -> list[str]:
    """Remove the release's environments and work queue before the run reports its outcome."""
    removed = finish_release(build_services(), release_id)
    get_run_logger().info("removed: %s", ", ".join(removed) or "nothing left")
    return removed


def teardown_release(flow, flow_run, state) -> None:
    """Final-state hook: the same teardown when a step raised, or the run was cancelled; a
    slot its stopped step still held is given back first."""
    release_id = flow_run.parameters["release_id"]
    try:
        removed = give_back_slots_of(flow_run.id) + finish_release(build_services(), release_id)
        logger.info(
            "teardown of %s (%s): %s", release_id, state.name, ", ".join(removed) or "nothing left"
        )
    except Exception:  # a hook must not mask the run's own outcome
        logger.exception("teardown of %s failed; the janitor will retry at expiry", release_id)
