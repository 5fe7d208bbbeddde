"""Teardown runs as the pipeline's final-state hook, whatever the outcome."""

from __future__ import annotations

import logging

from fearless.composition import build_services
from fearless.releases import finish_release

logger = logging.getLogger("fearless.teardown")


def teardown_release(flow, flow_run, state) -> None:
    """Remove the release's environments and queue on success, failure, rejection or cancel."""
    release_id = flow_run.parameters["release_id"]
    try:
        removed = finish_release(build_services(), release_id)
        logger.info("teardown of %s (%s): %s", release_id, state.name, ", ".join(removed) or "nothing left")
    except Exception:  # a hook must not mask the run's own outcome
        logger.exception("teardown of %s failed; the janitor will retry at expiry", release_id)
