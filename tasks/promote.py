from __future__ import annotations

from prefect import get_run_logger, task

from fearless.composition import build_services
from fearless.production.promotion import PromotionResult, promote, withdraw
from fearless.production.slot import promotion_slot
from fearless.release.candidate import Candidate
from tasks import STEP

# Well within the 30 s Prefect leaves a cancelled run before it kills the process.
WITHDRAW_WAIT_S = 10


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


def withdraw_promotion(candidate: Candidate, release_id: str) -> None:
    """Not a task: run while the release is being cancelled, after its promotion or bake was
    stopped. Its version leaves production if it got there, under the model's slot."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    if state is None or not state.is_cancelling():  # stopped to be resumed, not cancelled
        return
    services, digest, log = build_services(), candidate.bundle().digest, get_run_logger()
    if services.registry.get_alias(candidate.name, "production") != digest:
        log.info("release %s cancelled before its version served: nothing to undo", release_id)
        return
    try:
        with promotion_slot(candidate.name, wait_s=WITHDRAW_WAIT_S):
            done = withdraw(
                candidate.name,
                digest,
                services.registry,
                services.production,
                reason=f"release {release_id} cancelled",
            )
    except TimeoutError:
        log.error(
            "release %s cancelled while %s serves, and the model's promotion slot stayed taken: "
            "put the previous version back with `fearless rollback %s`",
            release_id, digest, candidate.name,
        )  # fmt: skip
        raise
    log.warning("release %s cancelled after its version served: %s", release_id, done)
