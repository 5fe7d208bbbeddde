from __future__ import annotations

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists

from fearless.candidate import Candidate
from fearless.composition import build_services
from fearless.promotion import PromotionResult, promote
from tasks import STEP


def promotion_limit(model: str) -> str:
    """A strict one-slot Prefect limit per model: two approved candidates never promote at once."""
    name = f"promote-{model}"
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
        except ObjectAlreadyExists:  # another release created it a moment ago
            pass
    return name


@task(name="promote-model", **STEP)
def promote_model(candidate: Candidate, approver: str, release_id: str) -> PromotionResult:
    """Move the `production` alias and switch the production service to the candidate."""
    services = build_services()
    with concurrency(promotion_limit(candidate.name), occupy=1, strict=True, timeout_seconds=600):
        result = promote(
            candidate.bundle(),
            services.registry,
            services.production,
            actor=approver,
            reason=f"release {release_id}",
        )
    get_run_logger().info("%s production is now %s at %s", result.model, result.digest, result.url)
    return result
