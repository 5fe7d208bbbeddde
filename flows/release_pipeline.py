"""The release pipeline: build, provision, load-test, check drift, approve, promote, bake,
tear down."""

from __future__ import annotations

from prefect import flow
from prefect.exceptions import TerminationSignal
from prefect.states import Failed, State

from fearless.bundles.source import ProjectSource
from fearless.evidence import EvidenceError
from fearless.release.liveness import WHILE_AWAITING_APPROVAL, CandidateDown
from tasks.approval import await_approval, publish_evidence, record_decision
from tasks.bake import bake_end_state, bake_release
from tasks.build import build_bundle
from tasks.drift import check_drift
from tasks.load_test import run_load_test
from tasks.notify import announce_approval, announce_release_end
from tasks.promote import promote_model, withdraw_promotion
from tasks.provision import check_environments, provision_env
from tasks.teardown import teardown_env, teardown_release

FINAL_HOOKS = [teardown_release, announce_release_end]


# No teardown when the run crashed: its process was lost, and the cleanup flow resumes it
# with its environments and queue (fearless.release.recovery).
@flow(
    name="release-pipeline",
    persist_result=True,
    log_prints=True,
    on_completion=FINAL_HOOKS,
    on_failure=FINAL_HOOKS,
    on_cancellation=FINAL_HOOKS,
)
def release_pipeline(
    source: ProjectSource, release_id: str, overrides: dict | None = None
) -> State:
    """Put one candidate through every gate; its source pack and its own work queue were made
    for it by the starter (`fearless.release.runs.start_release`)."""
    candidate = build_bundle(release_id, source, overrides)
    try:
        envs = provision_env(release_id, candidate)
    except CandidateDown as exc:
        return end(release_id, Failed(name="GateFailed", message=f"provisioning: {exc}"))
    load = run_load_test(release_id, candidate, envs)
    if load.inconclusive:
        return end(
            release_id,
            Failed(name="Inconclusive", message=f"load test: {'; '.join(load.reasons)}"),
        )
    if not load.passed:
        return end(
            release_id,
            Failed(name="GateFailed", message=f"load-test gate: {'; '.join(load.reasons)}"),
        )
    drift = check_drift(release_id, candidate, envs)
    if not drift.passed:
        return end(
            release_id,
            Failed(name="GateFailed", message=f"drift gate: {'; '.join(drift.reasons)}"),
        )
    try:
        evidence = publish_evidence(release_id, candidate, envs, load, drift)
    except EvidenceError as exc:
        return end(release_id, Failed(name="EvidenceNotWritten", message=f"{exc}; not promoted"))
    announce_approval(release_id, candidate, envs, load, drift)
    decision = await_approval(release_id, candidate, candidate.spec.approval.timeout_s, evidence)
    record_decision(release_id, candidate, decision, load, drift, evidence)
    if not decision.approve:
        return end(
            release_id,
            Failed(name="Rejected", message=f"rejected by {decision.approver}: {decision.comment}"),
        )
    stopped = check_environments(release_id, envs, WHILE_AWAITING_APPROVAL)
    if stopped is not None:  # approved on evidence that no longer holds: test it anew
        said = f"approval: {stopped.describe()}; not promoted, start the release again"
        return end(release_id, Failed(name="GateFailed", message=said))
    try:
        promotion = promote_model(candidate, decision.approver, release_id)
        baked = bake_release(release_id, candidate, promotion)
    except TerminationSignal:  # cancelled while promoting or baking: production as it was
        withdraw_promotion(candidate, release_id)
        raise
    return end(release_id, bake_end_state(baked, promotion))


def end(release_id: str, outcome: State) -> State:
    teardown_env(release_id)
    return outcome
