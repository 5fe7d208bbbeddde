"""The approval gate on the Prefect server: waiting for a decision the flow can verify, and the
records beside the run's form that `fearless approve` reads.

Each attempt of the gate is a pause of its own (`approval`, `approval-1`, ...). A decision the
flow refuses leaves the run waiting again, in a new attempt, until the gate's first deadline;
a suspended flow re-runs from the top on each resume and replays the earlier attempts, whose
decisions Prefect keeps, to the same verdicts. Beside each attempt the flow stores its
`ApprovalGate` (`<key>-gate`: what to sign) and its verdict (`<key>-verdict`). The flow itself
trusts neither record: it checks every decision against the gate it builds from its own state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from uuid import UUID

import httpx
from pydantic import BaseModel

from fearless.release.approval import (
    AcceptedDecision,
    ApprovalCheck,
    ApprovalDecision,
    ApprovalGate,
    check_decision,
    gate_key,
)
from fearless.release.signing import SigningError, sign

T = TypeVar("T", bound=BaseModel)
DEFAULT_KEYS = ("id_ed25519", "id_ecdsa", "id_rsa")


def wait_for_decision(
    wait: Callable[..., ApprovalDecision],
    client,
    flow_run_id: UUID,
    *,
    release_id: str,
    digest: str,
    allowed_signers: Path | None,
    timeout_s: int,
    form: Callable[[ApprovalGate], type[ApprovalDecision]],
    refused: Callable[[int, ApprovalDecision, ApprovalCheck], None],
    approvers: list[str] | None = None,
    starters: list[str] | None = None,
) -> AcceptedDecision:
    """The first decision `check_decision` accepts. `wait` is `suspend_flow_run` (or
    `pause_flow_run`), `form` the form class for an attempt's gate, `refused` what to do
    with each refused decision (log it, audit it); `approvers` are the only ones who may
    decide (None: anyone), `starters` who started the release (they may not approve it)."""
    reason, attempt = "", 0
    policy = {"approvers": approvers or [], "starters": starters or []}
    while True:
        key = gate_key(attempt)
        gate = open_gate(
            client, flow_run_id, key, release_id, digest, allowed_signers, timeout_s, reason,
            **policy,
        )  # fmt: skip
        decision = given_decision(client, flow_run_id, key, form(gate)) or wait(
            wait_for_input=form(gate), timeout=seconds_left(gate), key=key
        )
        check = check_decision(decision, gate, allowed_signers)
        _keep(client, flow_run_id, f"{key}-verdict", check)
        if check.accepted:
            return AcceptedDecision.of(decision, check)
        refused(attempt, decision, check)
        reason, attempt = check.note, attempt + 1


def given_decision(client, flow_run_id: UUID, key: str, form: type[ApprovalDecision]):
    """The decision already given at this attempt, if any.

    A run resumed after its process was lost re-runs from the top, like any resumed run; but
    Prefect forgets a run's pauses when it leaves Crashed, so at a gate already answered it
    would suspend again, and fail saving the form it kept from the first time (409). The
    decision is read here instead, as Prefect's own resume would have returned it.
    """
    from prefect.input.run_input import keyset_from_base_key

    keyset = keyset_from_base_key(key)
    if _read_text(client, flow_run_id, keyset["response"]) is None:
        return None
    return form.load(keyset, flow_run_id=flow_run_id)


def open_gate(
    client,
    flow_run_id: UUID,
    key: str,
    release_id: str,
    digest: str,
    allowed_signers: Path | None,
    timeout_s: int,
    refused: str,
    approvers: list[str] | None = None,
    starters: list[str] | None = None,
) -> ApprovalGate:
    """This attempt's gate, from the flow's own state; its deadline is the first attempt's
    (kept on the server, never later than a full timeout from now)."""
    first = _read(client, flow_run_id, f"{gate_key(0)}-gate", ApprovalGate)
    latest = datetime.now(UTC) + timedelta(seconds=timeout_s)
    gate = ApprovalGate(
        release_id=release_id,
        digest=digest,
        gate=f"{flow_run_id}/{key}",
        signing_required=allowed_signers is not None,
        deadline=min(first.deadline, latest) if first else latest,
        refused=refused,
        approvers=approvers or [],
        starters=starters or [],
    )
    _keep(client, flow_run_id, f"{key}-gate", gate)
    return gate


def seconds_left(gate: ApprovalGate) -> int:
    return max(1, round((gate.deadline - datetime.now(UTC)).total_seconds()))


def gate_of(client, run) -> ApprovalGate | None:
    """The gate a paused release run waits at (None for a run with no such record)."""
    key = run.state.state_details.pause_key if run.state else None
    return _read(client, run.id, f"{key}-gate", ApprovalGate) if key else None


def signed_input(
    client, run, *, approve: bool, approver: str, comment: str, key: Path | None
) -> dict:
    """The run input of a decision: signed with `key` (default: the user's SSH key) where
    the gate requires a signature, or whenever a key is given."""
    run_input = {"approve": approve, "approver": approver, "comment": comment}
    gate = gate_of(client, run)
    if gate is not None and gate.gate != f"{run.id}/{run.state.state_details.pause_key}":
        raise RuntimeError(f"the approval gate recorded for {run.name} is not its own")
    if gate is not None and gate.release_id != run.parameters.get("release_id", gate.release_id):
        raise RuntimeError(f"the approval gate recorded for {run.name} is another release's")
    if gate is not None and (gate.signing_required or key is not None):
        statement = gate.statement(approve, approver)
        run_input["signature"] = sign(statement, key or default_key())
    return run_input


def default_key() -> Path:
    """The user's SSH key, as ssh looks for it."""
    ssh = Path.home() / ".ssh"
    for name in DEFAULT_KEYS:
        if (ssh / name).is_file():
            return ssh / name
    raise SigningError(
        f"this release needs a signed approval and no SSH key is in {ssh} "
        f"({', '.join(DEFAULT_KEYS)}): pass --key (or set FEARLESS_APPROVAL_KEY)"
    )


def await_verdict(client, run, timeout_s: float = 120.0) -> ApprovalCheck | None:
    """The flow's verdict on the decision just sent to `run`'s current attempt, once the flow
    has resumed and checked it (None if it has not within `timeout_s`)."""
    key = run.state.state_details.pause_key
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        verdict = _read(client, run.id, f"{key}-verdict", ApprovalCheck)
        if verdict is not None:
            return verdict
        time.sleep(0.5)
    return None


def _read(client, flow_run_id: UUID, key: str, model: type[T]) -> T | None:
    text = _read_text(client, flow_run_id, key)
    return None if text is None else model.model_validate_json(text)


def _read_text(client, flow_run_id: UUID, key: str) -> str | None:
    try:
        return client.read_flow_run_input(flow_run_id, key)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise


def _keep(client, flow_run_id: UUID, key: str, record: BaseModel) -> None:
    """Store `record` unless an earlier run of the flow already did."""
    if _read(client, flow_run_id, key, type(record)) is None:
        client.create_flow_run_input(flow_run_id, key, record.model_dump_json())
