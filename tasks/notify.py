"""Alerts out of a release: the approval waiting, and a release that ended badly."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from fearless.composition import build_services
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.gates import DriftOutcome, LoadTestOutcome
from fearless.release.notifications import (
    approval_notice,
    evidence_summary,
    notifier_from,
    release_failed_notice,
    rollback_notice,
    summary_key,
)
from tasks import STEP

logger = logging.getLogger("fearless.notify")


@task(name="announce-approval", **STEP)
def announce_approval(
    release_id: str,
    candidate: Candidate,
    envs: TestEnvironments,
    load: LoadTestOutcome,
    drift: DriftOutcome,
) -> str:
    """Publish the evidence summary (CI's watch shows it) and alert the named blocks, once:
    a resumed run takes this step from its cache."""
    services = build_services()
    champion = envs.champion.digest if envs.champion else None
    summary = evidence_summary(load, drift, champion)
    evidence_url = services.reports.url(release_id, "evidence.html").url
    notice = approval_notice(release_id, candidate.name, candidate.digest, evidence_url, summary)
    create_markdown_artifact(
        key=summary_key(release_id), markdown=notice.body, description=notice.subject
    )
    for problem in notifier_from(services.settings).send(notice):
        get_run_logger().warning("approval notice not sent: %s", problem)
    return notice.body


def announce_release_end(flow, flow_run, state) -> None:
    """Final-state hook: alert when a release failed or was rolled back (a person's rejection
    and a cancellation are left out: whoever did it knows)."""
    from fearless.release.outcomes import Outcome, outcome_of

    outcome = outcome_of(state.type.value, state.name, state.message)
    if outcome in (Outcome.promoted, Outcome.rejected, Outcome.cancelled):
        return
    try:
        services = build_services()
        release_id = flow_run.parameters["release_id"]
        if outcome is Outcome.rolled_back:
            model = next((t[6:] for t in flow_run.tags if t.startswith("model:")), release_id)
            # the bake's end state reads "rolled back to <digest>: <why>"
            digest, _, why = (state.message or "").removeprefix("rolled back to ").partition(": ")
            notice = rollback_notice(model, digest, by="the bake window", reason=why)
        else:
            url = f"{services.settings.ui_url}/runs/flow-run/{flow_run.id}"
            notice = release_failed_notice(release_id, outcome.value, state.message or "", url)
        notifier_from(services.settings).send(notice)
    except Exception:  # a hook must not mask the run's own outcome
        logger.exception("alert for the end of %s not sent", flow_run.name)
