from __future__ import annotations

from prefect import get_run_logger, task

from fearless.composition import build_services
from fearless.production.promotion import PromotionResult, promote
from fearless.production.slot import promotion_slot
from fearless.release.candidate import Candidate
from tasks import STEP


@task(name="promote-model", **STEP)
def promote_model(candidate: Candidate, approver: str, release_id: str) -> PromotionResult:
    """Move the `production` alias and switch the production service to the candidate."""
    services = build_services()
    with promotion_slot(candidate.name):
        result = promote(
            candidate.bundle(),
            services.registry,
            services.production,
            actor=approver,
            reason=f"release {release_id}",
        )
    get_run_logger().info("%s production is now %s at %s", result.model, result.digest, result.url)
    return result
