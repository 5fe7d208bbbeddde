"""The approval gate: the typed decision a person gives, how the flow verifies it, and the
audit trail it leaves.

The same `ApprovalDecision` is the Prefect UI's resume form and what `fearless approve` sends,
so both paths are validated by the server against one schema. Where the platform lists who may
approve (an ssh-keygen allowed_signers file), a decision counts only with the approver's SSH
signature over an `ApprovalGate.statement`: this release, this candidate digest, this decision,
this approver, this attempt of this run's gate. Anyone who can reach the Prefect API can still
send a decision; only a listed key can make one the flow accepts.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

from prefect.input import RunInput
from pydantic import BaseModel, Field

from fearless.ids import checked_id
from fearless.release import signing
from fearless.release.four_eyes import policy_refusal

APPROVAL_KEY = "approval"
TIMEOUT_APPROVER = "fearless:approval-timeout"
APPROVER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"


class ApprovalDecision(RunInput):
    """Approve or reject this release candidate."""

    approve: bool = Field(default=False, description="Switch on to promote this candidate.")
    approver: str = Field(
        min_length=1,
        max_length=100,
        pattern=APPROVER_PATTERN,
        description="Who decides (letters, digits and . _ @ + -; your name in allowed_signers).",
    )
    comment: str = Field(default="", max_length=2000, description="Why.")
    signature: str = Field(
        default="",
        max_length=8000,
        description="Where approvals are signed: the SSH signature printed by the command above.",
    )


def gate_key(attempt: int) -> str:
    """The pause key of a gate's attempts: `approval`, then `approval-1`... after refusals."""
    return APPROVAL_KEY if attempt == 0 else f"{APPROVAL_KEY}-{attempt}"


class ApprovalGate(BaseModel):
    """One attempt of a release's approval gate: what a signature must cover besides the
    decision and the approver. The flow builds it from its own state; `fearless approve`
    reads it from the run to learn what to sign."""

    release_id: str
    digest: str
    gate: str  # "<flow run id>/<pause key>": this attempt of this run, never another
    signing_required: bool
    deadline: datetime  # when the gate closes, the same for every attempt
    refused: str = ""  # why the attempt before this one was refused
    approvers: list[str] = []  # the spec's approval.approvers: only they decide (empty: anyone)
    starters: list[str] = []  # who started the release: none of them approves it

    def statement(self, approve: bool, approver: str) -> str:
        """The exact text an approver signs."""
        return (
            f"fearless-approval v1\nrelease: {self.release_id}\ndigest: {self.digest}\n"
            f"decision: {'approve' if approve else 'reject'}\napprover: {approver}\n"
            f"gate: {self.gate}\n"
        )

    def sign_command(self, key: str = "~/.ssh/id_ed25519") -> str:
        """A shell command that prints the signature to paste: `approve NAME` as given, or
        `reject NAME`, with NAME the approver's."""
        template = self.statement(True, "%s").replace("decision: approve", "decision: %s")
        printf = shlex.quote(template.replace("\n", "\\n"))
        return f"printf {printf} approve NAME | ssh-keygen -Y sign -n {signing.NAMESPACE} -f {key}"


class ApprovalCheck(BaseModel):
    """The flow's verdict on one decision: accepted or not, signed or not, and why."""

    accepted: bool
    signed: bool = False
    note: str


class AcceptedDecision(BaseModel):
    """A decision the flow acts on, with how it was verified (what the audit log records)."""

    approve: bool
    approver: str
    comment: str
    signed: bool
    verification: str

    @classmethod
    def of(cls, decision: ApprovalDecision, check: ApprovalCheck) -> AcceptedDecision:
        return cls(
            approve=decision.approve,
            approver=decision.approver,
            comment=decision.comment,
            signed=check.signed,
            verification=check.note,
        )


def check_decision(
    decision: ApprovalDecision, gate: ApprovalGate, allowed_signers: Path | None
) -> ApprovalCheck:
    """Accept a decision signed by a key `allowed_signers` lists for its approver, over this
    gate's statement, by one of the gate's approvers who did not start the release; with no
    allowed_signers configured, check the name as given, unsigned, and say so."""
    refusal = policy_refusal(decision.approve, decision.approver, gate.approvers, gate.starters)
    if allowed_signers is None:
        return ApprovalCheck(
            accepted=refusal is None,
            note=refusal
            or "unsigned: no allowed_signers file is configured (FEARLESS_ALLOWED_SIGNERS), "
            "so the approver's name was not verified",
        )
    if not decision.signature.strip():
        return ApprovalCheck(
            accepted=False,
            note=f"unsigned: approvals here must be signed by a key listed in {allowed_signers}",
        )
    statement = gate.statement(decision.approve, decision.approver)
    check = signing.verify(statement, decision.signature, decision.approver, allowed_signers)
    if not check.ok:
        return ApprovalCheck(accepted=False, note=check.reason)
    if refusal is not None:
        return ApprovalCheck(accepted=False, signed=True, note=refusal)
    return ApprovalCheck(
        accepted=True,
        signed=True,
        note=f"signed by {decision.approver} with key {check.key}, listed in {allowed_signers}",
    )


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


def form_description(ui_url: str, gate: ApprovalGate, evidence_path: Path, page: str) -> str:
    """What the approval form shows above its fields: why the last decision was refused, if
    it was; links to the evidence page (with charts) and its artifact, each reachable from the
    approver's machine; how to sign, where signing is required; then the evidence summary."""
    artifact = f"{ui_url}/artifacts/key/evidence-{gate.release_id}"
    parts = [f"**Evidence:** [page with charts]({page}) · [Prefect artifact]({artifact})"]
    if gate.refused:
        parts.insert(0, f"**The last decision was refused:** {gate.refused}")
    if gate.approvers or gate.starters:
        who = ", ".join(gate.approvers) if gate.approvers else "anyone"
        started = f"; not {' or '.join(gate.starters)}, who started it" if gate.starters else ""
        parts.append(f"**Who may approve:** {who}{started}")
    if gate.signing_required:
        parts.append(
            "**Sign your decision** (this platform accepts only signed approvals): run "
            f"`fearless approve {gate.release_id} --by NAME` (add `--reject` to reject), or "
            "paste into *signature* what this prints (for a rejection, `reject` for "
            f"`approve`):\n\n```\n{gate.sign_command()}\n```"
        )
    return "\n\n".join([*parts, evidence_path.read_text()])
