from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.flow_runs import suspend_flow_run

from fearless.composition import build_services
from fearless.evidence import Evidence, EvidenceFiles, environment_costs, write_evidence
from fearless.platform.reports import publishing_links
from fearless.release import approval
from fearless.release.approval_gate import wait_for_decision
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.four_eyes import starters_of
from fearless.release.gates import DriftOutcome, LoadTestOutcome
from tasks import STEP, host_waits, link_report


@task(name="publish-evidence", **STEP)
def publish_evidence(
    release_id: str,
    candidate: Candidate,
    envs: TestEnvironments,
    load: LoadTestOutcome,
    drift: DriftOutcome,
) -> str:
    """One page an approver can decide from: a Prefect artifact, evidence.md and evidence.html."""
    services = build_services()
    costs, cost_note = environment_costs(services.environments, envs)
    evidence = Evidence(
        release_id=release_id, model=candidate.name, candidate_digest=candidate.digest,
        source=candidate.source, envs=envs, load=load, drift=drift, backend=services.settings.backend,
        costs=costs, cost_note=cost_note, parity=services.environments.parity(envs.candidate),
        host_waits=host_waits(services, release_id),
    )  # fmt: skip
    run_dir = services.settings.paths.run_dir(release_id)
    files = write_evidence(
        run_dir, evidence, publishing_links(services.reports, release_id, run_dir)
    )
    publish_evidence_artifacts(release_id, files)
    return str(files.markdown)


def publish_evidence_artifacts(release_id: str, files: EvidenceFiles) -> None:
    """The markdown as `evidence-<release>` (a new version each time) and a link to the page,
    published where the approver's browser reaches it (the server's report route, or S3)."""
    page = link_report(
        build_services(), release_id, f"evidence-page-{release_id}", files.html,
        "Evidence with charts (HTML)",
    )  # fmt: skip
    create_markdown_artifact(
        key=f"evidence-{release_id}",
        markdown=files.markdown.read_text(),
        description=f"Evidence for release {release_id}; with charts: {page.describe()}",
    )


def await_approval(
    release_id: str, candidate: Candidate, timeout_s: int, evidence_path: str
) -> approval.AcceptedDecision:
    """Suspend until a person decides: the process exits, so no worker slot is held meanwhile.

    On resume the flow re-runs from the top; finished steps come back from their cache and
    this call returns the decision given in the UI form or by `fearless approve`, once the
    platform verified it. A decision it cannot verify (unsigned where signatures are required,
    forged, by an unlisted key, for another release, digest, decision or attempt) is refused,
    logged and audited, and the gate waits again until its deadline.
    """
    get_run_logger().info(
        "waiting for approval (timeout %s s): fearless approve %s --by NAME", timeout_s, release_id
    )
    services = build_services()
    # The bare URL: the form makes it a markdown link; the evidence below it states its expiry.
    page = services.reports.url(release_id, "evidence.html").url

    def form(gate: approval.ApprovalGate) -> type[approval.ApprovalDecision]:
        description = approval.form_description(
            services.settings.ui_url, gate, Path(evidence_path), page
        )
        return approval.ApprovalDecision.with_initial_data(description=description, approve=False)

    def refused(attempt: int, decision, check: approval.ApprovalCheck) -> None:
        refuse_decision.with_options(name=f"refuse-decision-{attempt}")(
            release_id, candidate, decision, check
        )

    with get_client(sync_client=True) as client:
        return wait_for_decision(
            suspend_flow_run, client, FlowRunContext.get().flow_run.id,
            release_id=release_id, digest=candidate.digest,
            allowed_signers=services.settings.allowed_signers, timeout_s=timeout_s,
            form=form, refused=refused, approvers=candidate.spec.approval.approvers,
            starters=starters_of(candidate.source),
        )  # fmt: skip


@task(name="refuse-decision", **STEP)
def refuse_decision(
    release_id: str,
    candidate: Candidate,
    decision: approval.ApprovalDecision,
    check: approval.ApprovalCheck,
) -> None:
    """Log and audit a decision the gate refused; the release goes on waiting."""
    approval.record_decision(
        build_services().settings.paths.registry,
        candidate.name,
        release_id,
        candidate.digest,
        {
            "approve": decision.approve,
            "approver": decision.approver,
            "comment": decision.comment,
            "refused": check.note,
        },
        {},
    )
    get_run_logger().warning(
        "refused the decision sent as %s (%s): %s; still waiting for approval",
        decision.approver,
        "approve" if decision.approve else "reject",
        check.note,
    )


@task(name="record-decision", **STEP)
def record_decision(
    release_id: str,
    candidate: Candidate,
    decision: approval.AcceptedDecision,
    load: LoadTestOutcome,
    drift: DriftOutcome,
    evidence: str,
) -> str:
    """Append the decision, how it was verified and the figures it was made on to the model's
    audit log."""
    shown = {
        "evidence": evidence,
        "load_test": {c.name: c.observed for c in load.verdict.checks},
        "drift": {c.name: c.observed for c in drift.verdict.checks},
    }
    path = approval.record_decision(
        build_services().settings.paths.registry,
        candidate.name,
        release_id,
        candidate.digest,
        decision.model_dump(),
        shown,
    )
    get_run_logger().info(
        "%s by %s: %s (%s)",
        "approved" if decision.approve else "rejected",
        decision.approver,
        decision.comment or "(no comment)",
        decision.verification,
    )
    return str(path)
