from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.flow_runs import suspend_flow_run

from fearless import approval
from fearless.candidate import Candidate, TestEnvironments
from fearless.composition import build_services
from fearless.evidence import evidence_markdown
from fearless.gates import DriftOutcome, LoadTestOutcome
from tasks import STEP


@task(name="publish-evidence", **STEP)
def publish_evidence(
    release_id: str,
    candidate: Candidate,
    envs: TestEnvironments,
    load: LoadTestOutcome,
    drift: DriftOutcome,
) -> str:
    """One page an approver can decide from, as a Prefect artifact and a file."""
    champion = envs.champion.digest if envs.champion else None
    markdown = evidence_markdown(release_id, candidate, envs, load, drift, champion)
    path = build_services().settings.paths.run_dir(release_id) / "evidence.md"
    path.write_text(markdown)
    create_markdown_artifact(
        key=f"evidence-{release_id}",
        markdown=markdown,
        description=f"Evidence for release {release_id}",
    )
    return str(path)


def await_approval(
    release_id: str, timeout_s: int, evidence_path: str
) -> approval.ApprovalDecision:
    """Suspend until a person decides: the process exits, so no worker slot is held meanwhile.

    On resume the flow re-runs from the top; finished steps come back from their cache and
    this call returns the decision given in the UI form or by `fearless approve`.
    """
    get_run_logger().info(
        "waiting for approval (timeout %s s): fearless approve %s --by NAME", timeout_s, release_id
    )
    settings = build_services().settings
    form = approval.ApprovalDecision.with_initial_data(
        description=approval.form_description(settings.ui_url, release_id, Path(evidence_path)),
        approve=False,
    )
    return suspend_flow_run(wait_for_input=form, timeout=timeout_s, key=approval.APPROVAL_KEY)


@task(name="record-decision", **STEP)
def record_decision(
    release_id: str,
    candidate: Candidate,
    decision: approval.ApprovalDecision,
    load: LoadTestOutcome,
    drift: DriftOutcome,
    evidence: str,
) -> str:
    """Append the decision, with the figures it was made on, to the model's audit log."""
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
        {"approve": decision.approve, "approver": decision.approver, "comment": decision.comment},
        shown,
    )
    get_run_logger().info(
        "%s by %s: %s",
        "approved" if decision.approve else "rejected",
        decision.approver,
        decision.comment or "(no comment)",
    )
    return str(path)
