"""The approval gate: the typed decision a person gives, and the audit trail it leaves.

The same `ApprovalDecision` is the Prefect UI's resume form and what `fearless approve` sends,
so both paths are validated by the server against one schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prefect.input import RunInput
from pydantic import Field

from fearless.ids import checked_id

APPROVAL_KEY = "approval"
TIMEOUT_APPROVER = "fearless:approval-timeout"


class ApprovalDecision(RunInput):
    """Approve or reject this release candidate."""

    approve: bool = Field(default=False, description="Switch on to promote this candidate.")
    approver: str = Field(min_length=1, max_length=100, description="Who decides.")
    comment: str = Field(default="", max_length=2000, description="Why.")


def record_decision(
    registry_root: Path, model: str, release_id: str, digest: str, decision: dict, shown: dict
) -> Path:
    """Append who decided what, when, for which digest and on which figures."""
    log = registry_root / checked_id(model, "model name") / "decisions.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "at": datetime.now(UTC).isoformat(),
        "release_id": release_id,
        "digest": digest,
        **decision,
        "shown": shown,
    }
    with log.open("a") as handle:
        handle.write(json.dumps(entry, default=str) + "\n")
    return log


def form_description(ui_url: str, release_id: str, evidence_path: Path, page: str) -> str:
    """What the approval form shows above its fields: links to the evidence page (with charts)
    and its artifact, each reachable from the approver's machine, then its summary."""
    artifact = f"{ui_url}/artifacts/key/evidence-{release_id}"
    links = f"**Evidence:** [page with charts]({page}) · [Prefect artifact]({artifact})"
    return f"{links}\n\n{evidence_path.read_text()}"
