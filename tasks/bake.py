from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import Completed, Failed, State

from fearless.composition import build_services
from fearless.production.bake import BakeResult, bake
from fearless.production.promotion import PromotionResult
from fearless.production.slot import WAIT_S, promotion_slot
from fearless.release.candidate import Candidate
from tasks import STEP


@task(name="bake", **STEP)
def bake_release(release_id: str, candidate: Candidate, promotion: PromotionResult) -> BakeResult:
    """Watch production through the bake window; roll back on a breach.

    Holds the model's promotion slot, so no other promotion moves production meanwhile.
    """
    services = build_services()
    with promotion_slot(candidate.name, wait_s=WAIT_S + candidate.spec.bake.window_s):
        result = bake(
            promotion,
            candidate.spec,
            services.registry,
            services.production,
            release_id=release_id,
        )
    create_markdown_artifact(
        key=f"bake-{release_id}",
        markdown=bake_markdown(result, candidate.spec.bake.window_s),
        description=f"Bake window of release {release_id}",
    )
    log = get_run_logger()
    if result.rolled_back_to:
        log.warning("bake failed; rolled back to %s: %s", result.rolled_back_to, result.verdict)
    else:
        log.info("bake %s: %s", "passed" if result.verdict.passed else "failed", result.verdict)
    return result


def bake_markdown(result: BakeResult, window_s: int) -> str:
    verdict = result.verdict
    status = "passed" if verdict.passed else "failed"
    lines = [
        f"# Bake of `{result.model}` {result.digest}: {status}",
        "",
        f"- window: {window_s} s; {verdict.summary()}",
    ]
    if result.rolled_back_to:
        lines.append(f"- rolled back to {result.rolled_back_to} by `fearless-bake`")
    return "\n".join(lines) + "\n"


def bake_end_state(result: BakeResult, promotion: PromotionResult) -> State:
    """How a release that got as far as promotion ends, given its bake."""
    verdict = result.verdict
    if result.rolled_back_to:
        why = "; ".join(verdict.reasons)
        return Failed(name="RolledBack", message=f"rolled back to {result.rolled_back_to}: {why}")
    if not verdict.passed:
        return Failed(name="BakeFailed", message=f"bake failed: {verdict.summary()}")
    return Completed(name="Promoted", message=f"{promotion.digest} serves at {promotion.url}")
