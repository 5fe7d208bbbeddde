"""Alerts where people already are: sent through the Prefect notification blocks settings name.

A block (Slack or Teams webhook, a generic webhook, email) is made once in the Prefect UI or
with `Block.save`, and `FEARLESS_NOTIFICATION_BLOCKS` names it as `<block-type-slug>/<name>`,
e.g. `["slack-webhook/ml-team", "custom-webhook/pager"]`. The webhook's address and secret
stay in the block; Fearless never holds them. With no block named nothing is sent, and an
alert that cannot be delivered is logged, never raised: a chat outage must not fail a release.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

logger = logging.getLogger("fearless.notifications")

NoticeKind = Literal["drift", "approval-waiting", "rollback", "release-failed"]


@dataclass(frozen=True)
class Notice:
    """One alert: a short subject and a markdown body (chat tools render both)."""

    kind: NoticeKind
    subject: str
    body: str


class Notifier(Protocol):
    def send(self, notice: Notice) -> list[str]:
        """Send to every destination; return one line per destination that failed."""
        ...


class BlockNotifier:
    """Sends each notice through every named Prefect notification block."""

    def __init__(self, blocks: list[str]) -> None:
        self.blocks = list(blocks)

    def send(self, notice: Notice) -> list[str]:
        if not self.blocks:
            return []
        import prefect.blocks.notifications  # noqa: F401  (registers the block types)
        from prefect.blocks.core import Block

        problems = []
        for ref in self.blocks:
            try:
                Block.load(ref, validate=True).notify(notice.body, subject=notice.subject)
            except Exception as exc:  # noqa: BLE001  (any failure to deliver is logged, not raised)
                problems.append(f"{ref}: {type(exc).__name__}: {exc}")
                logger.warning("alert %r not sent through %s: %s", notice.subject, ref, exc)
        return problems


def summary_key(release_id: str) -> str:
    """The Prefect artifact key of a release's approval notice (CI's watch reads it)."""
    return f"approval-summary-{release_id.lower()}"


def read_summary(client, release_id: str) -> str | None:
    """The latest approval notice a release published, from the Prefect API; None if none."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[summary_key(release_id)])),
        sort=ArtifactSort.CREATED_DESC,
        limit=1,
    )
    return str(found[0].data) if found else None


def notifier_from(settings) -> BlockNotifier:
    return BlockNotifier(settings.notification_blocks)


def drift_notice(model: str, message: str) -> Notice:
    return Notice("drift", f"Fearless: drift in production for {model}", message)


def approval_notice(
    release_id: str, model: str, digest: str, evidence_url: str, summary: str
) -> Notice:
    """The waiting approval: the evidence link, the figures it rests on, the two commands."""
    body = (
        f"Release `{release_id}` of {model} (`{digest}`) passed its gates and waits for a "
        f"decision.\n\nEvidence: {evidence_url}\n\n{summary}\n"
        f"- approve: `fearless approve {release_id} --by NAME --comment TEXT`\n"
        f"- reject: `fearless reject {release_id} --by NAME --comment TEXT`\n"
    )
    return Notice(
        "approval-waiting", f"Fearless: {model} release {release_id} awaits approval", body
    )


def rollback_notice(model: str, digest: str, *, by: str, reason: str) -> Notice:
    return Notice(
        "rollback",
        f"Fearless: {model} rolled back",
        f"{model} production is back at `{digest}` (rolled back by {by}): "
        f"{reason or 'no reason given'}",
    )


def release_failed_notice(release_id: str, outcome: str, detail: str, url: str) -> Notice:
    return Notice(
        "release-failed",
        f"Fearless: release {release_id} {outcome}",
        f"Release `{release_id}` ended {outcome}: {detail}\n\nRun: {url}",
    )


def _check_rows(checks) -> list[str]:
    return [
        f"| {c.name} | {c.observed:.4g} | {c.limit:.4g} | {'yes' if c.ok else '**no**'} |"
        for c in checks
    ]


def evidence_summary(load, drift, champion_digest: str | None) -> str:
    """Markdown: the gate figures, the drift and the comparison with the champion; the same
    text goes in the approval notice and in CI's job summary."""
    lines = ["| check | observed | limit | ok |", "|---|---|---|---|"]
    if load.verdict is not None:
        lines += _check_rows(load.verdict.checks)
    lines += _check_rows(drift.verdict.checks)
    scores = drift.scores
    drifted = f"{scores.drifted_share:.0%} of columns drifted on {scores.current_rows} records"
    lines += ["", f"Drift: {drifted} served by the candidate."]
    if champion_digest is None:
        lines.append("Champion: none (first release).")
    else:
        lines.append(f"Champion: `{champion_digest}`.")
        if scores.agreement is not None:
            lines.append(
                f"The candidate agrees with the champion on {scores.agreement:.1%} of "
                f"{scores.compared_rows} records."
            )
        regression = load.regression
        if regression is not None:
            lines.append(
                f"Against the champion under the same load (margin {regression.margin:.0%}):"
            )
            lines += [
                f"- {c.name}: candidate {c.candidate:.4g}, champion {c.champion:.4g} "
                f"({'ok' if c.ok else 'worse than allowed'})"
                for c in regression.checks
            ]
    return "\n".join(lines) + "\n"
