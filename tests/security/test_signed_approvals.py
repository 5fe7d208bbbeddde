"""Nobody approves who should not: where the platform lists who may approve (an ssh-keygen
allowed_signers file), the flow acts only on a decision signed, with a listed key, over this
release, this candidate digest, this decision, this approver and this attempt of the gate.

Before, `approver` was free text and a resume sent straight to the Prefect API passed the same
schema as the CLI: CI's API credential could approve as "cto". Signatures are made and checked
by the real `ssh-keygen` (openssh-client); the gate tests run a flow on the session's server.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fearless.release.approval import (
    ApprovalDecision,
    ApprovalGate,
    check_decision,
    form_description,
)
from fearless.release.signing import sign

RELEASE = "credit-1a2b3c4d"
DIGEST = "sha256:" + "ab" * 32
GATE = "9d4c3f52-5a44-4c41-a1a9-1bd1b0d6f0a7/approval"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """SSH keys of ann (an approver), bob (listed for git signing only) and eve (unlisted), and
    the allowed_signers file listing the first two."""
    assert shutil.which("ssh-keygen"), "ssh-keygen is missing: install openssh-client"
    folder = tmp_path_factory.mktemp("keys")
    keys = {}
    for name in ("ann", "bob", "eve"):
        keys[name] = folder / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys[name])],
            check=True,
        )
    public = {n: " ".join(Path(f"{k}.pub").read_text().split()[:2]) for n, k in keys.items()}
    keys["allowed_signers"] = folder / "allowed_signers"
    keys["allowed_signers"].write_text(
        f'ann namespaces="fearless-approval" {public["ann"]}\n'
        f'bob namespaces="git" {public["bob"]}\n'
    )
    return keys


def gate(**changes) -> ApprovalGate:
    fields = {
        "release_id": RELEASE,
        "digest": DIGEST,
        "gate": GATE,
        "signing_required": True,
        "deadline": datetime.now(UTC) + timedelta(hours=1),
    }
    return ApprovalGate(**{**fields, **changes})


def decision(approve=True, approver="ann", signature="") -> ApprovalDecision:
    return ApprovalDecision(approve=approve, approver=approver, signature=signature)


def signed(key: Path, *, approve=True, approver="ann", on: ApprovalGate | None = None) -> str:
    return sign((on or gate()).statement(approve, approver), key)


def test_a_decision_signed_by_the_approvers_listed_key_is_accepted(keys):
    check = check_decision(decision(signature=signed(keys["ann"])), gate(), keys["allowed_signers"])
    assert check.accepted and check.signed, check
    assert "signed by ann with key SHA256:" in check.note


def test_a_signed_rejection_is_accepted_too(keys):
    signature = signed(keys["ann"], approve=False)
    check = check_decision(decision(False, signature=signature), gate(), keys["allowed_signers"])
    assert check.accepted and check.signed, check


def test_an_unsigned_decision_is_refused_where_signing_is_required(keys):
    """What CI's API credential (or anyone's) can send: a name, no signature."""
    check = check_decision(decision(approver="cto"), gate(), keys["allowed_signers"])
    assert not check.accepted and check.note.startswith("unsigned"), check


@pytest.mark.parametrize("forgery", ["garbage", "truncated", "altered"])
def test_a_forged_signature_is_refused(keys, forgery):
    good = signed(keys["ann"])
    lines = good.splitlines()
    forged = {
        "garbage": "-----BEGIN SSH SIGNATURE-----\nnot a signature\n-----END SSH SIGNATURE-----",
        "truncated": "\n".join([lines[0], lines[1], lines[-1]]),
        "altered": "\n".join([lines[0], lines[1], lines[2][:-4] + "AAAA", *lines[3:]]),
    }[forgery]
    check = check_decision(decision(signature=forged), gate(), keys["allowed_signers"])
    assert not check.accepted and not check.signed, check


def test_not_a_signature_at_all_is_refused(keys):
    check = check_decision(decision(signature="LGTM"), gate(), keys["allowed_signers"])
    assert not check.accepted and "not an SSH signature" in check.note


def test_a_key_not_in_allowed_signers_is_refused(keys):
    """eve signs, correctly, a decision in ann's name with her own key."""
    check = check_decision(decision(signature=signed(keys["eve"])), gate(), keys["allowed_signers"])
    assert not check.accepted and "is not in" in check.note, check


def test_a_listed_key_cannot_sign_for_another_approver(keys):
    """ann's key, signing a decision sent in bob's name."""
    signature = signed(keys["ann"], approver="bob")
    check = check_decision(
        decision(approver="bob", signature=signature), gate(), keys["allowed_signers"]
    )
    assert not check.accepted and "not for 'bob'" in check.note, check


def test_a_key_listed_for_other_uses_cannot_approve(keys):
    """bob's key is listed for git signing only (how a CI or service key would be listed)."""
    signature = signed(keys["bob"], approver="bob")
    check = check_decision(
        decision(approver="bob", signature=signature), gate(), keys["allowed_signers"]
    )
    assert not check.accepted and "but not for this" in check.note, check


def test_a_signature_in_another_namespace_is_refused(keys, tmp_path):
    message = tmp_path / "statement"
    message.write_text(gate().statement(True, "ann"))
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", str(keys["ann"]), str(message)],
        check=True,
        capture_output=True,
    )
    signature = Path(f"{message}.sig").read_text()
    check = check_decision(decision(signature=signature), gate(), keys["allowed_signers"])
    assert not check.accepted and "not over this decision" in check.note, check


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"release_id": "credit-99999999"},
        {"digest": "sha256:" + "cd" * 32},
        {"gate": "9d4c3f52-5a44-4c41-a1a9-1bd1b0d6f0a7/approval-1"},
        {"gate": "00000000-0000-4000-8000-000000000000/approval"},
    ],
    ids=["another-release", "another-digest", "another-attempt", "another-run"],
)
def test_a_good_signature_made_for_another_gate_is_refused(keys, elsewhere):
    """A replay: ann's real signature, made for another release, candidate or attempt."""
    signature = signed(keys["ann"], on=gate(**elsewhere))
    check = check_decision(decision(signature=signature), gate(), keys["allowed_signers"])
    assert not check.accepted and "not over this decision" in check.note, check


def test_a_signed_rejection_cannot_be_sent_as_an_approval(keys):
    signature = signed(keys["ann"], approve=False)
    check = check_decision(decision(True, signature=signature), gate(), keys["allowed_signers"])
    assert not check.accepted and "not over this decision" in check.note, check


def test_a_missing_allowed_signers_file_refuses_everything(keys, tmp_path):
    check = check_decision(decision(signature=signed(keys["ann"])), gate(), tmp_path / "gone")
    assert not check.accepted and "is missing" in check.note


def test_without_allowed_signers_a_decision_is_taken_unsigned_and_said_so():
    check = check_decision(decision(approver="anyone"), gate(signing_required=False), None)
    assert check.accepted and not check.signed
    assert "unsigned" in check.note and "FEARLESS_ALLOWED_SIGNERS" in check.note


@pytest.mark.parametrize("approve", [True, False])
def test_the_command_the_form_shows_signs_exactly_the_statement(keys, approve):
    """What a UI approver runs: the form's command, with their name and decision filled in."""
    command = gate().sign_command(str(keys["ann"]))
    command = command.replace(" approve NAME |", f" {'approve' if approve else 'reject'} ann |")
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    check = check_decision(
        decision(approve, signature=done.stdout), gate(), keys["allowed_signers"]
    )
    assert check.accepted, check


@pytest.mark.parametrize("paste", ["one line", "crlf", "indented"])
def test_a_signature_pasted_with_other_line_breaks_still_checks(keys, paste):
    lines = signed(keys["ann"]).splitlines()
    pasted = {
        "one line": " ".join(lines),
        "crlf": "\r\n".join(lines),
        "indented": "\n".join(f"    {line}" for line in lines),
    }[paste]
    check = check_decision(decision(signature=pasted), gate(), keys["allowed_signers"])
    assert check.accepted, check


def test_the_form_shows_how_to_sign_and_why_the_last_decision_was_refused(tmp_path):
    evidence = tmp_path / "evidence.md"
    evidence.write_text("# Evidence")
    text = form_description(
        "http://127.0.0.1:4200", gate(refused="unsigned: ..."), evidence, "http://x/e.html"
    )
    assert text.startswith("**The last decision was refused:** unsigned")
    assert f"fearless approve {RELEASE} --by NAME" in text and "ssh-keygen -Y sign" in text
    unsigned = form_description("u", gate(signing_required=False), evidence, "p")
    assert "ssh-keygen" not in unsigned and "refused" not in unsigned


# The gate itself, on the session's real server: a flow waits with the same loop the release
# pipeline runs (paused in this process, so no deployment or worker is involved).


@pytest.fixture
def waiting_gate(platform, keys):
    """A flow run waiting at an approval gate that requires signatures; yields (client, run
    id, results) and leaves the flow's outcome in results["accepted"] or results["error"]."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.flow_runs import pause_flow_run
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    from fearless.release.approval_gate import wait_for_decision

    results: dict = {"refused": []}
    started = threading.Event()

    def pause(**kwargs):
        return pause_flow_run(poll_interval=0.5, **kwargs)

    @flow(name="signed-approval-probe")
    def gate_probe():
        results["run_id"] = FlowRunContext.get().flow_run.id
        started.set()
        with get_client(sync_client=True) as client:
            return wait_for_decision(
                pause, client, results["run_id"],
                release_id=RELEASE, digest=DIGEST, allowed_signers=keys["allowed_signers"],
                timeout_s=300, form=lambda g: ApprovalDecision.with_initial_data(
                    description=form_description("u", g, evidence, "p"), approve=False
                ),
                refused=lambda attempt, d, c: results["refused"].append((attempt, c.note)),
            )  # fmt: skip

    def run():
        try:
            with temporary_settings({PREFECT_LOGGING_TO_API_ENABLED: False}):
                results["accepted"] = gate_probe()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            results["error"] = exc

    evidence = Path(platform.settings.state_dir) / "probe-evidence.md"
    evidence.write_text("# Evidence")
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert started.wait(60), "the probe flow never started"
    with get_client(sync_client=True) as client:
        yield client, results["run_id"], results
    worker.join(timeout=30)


def paused_at(client, run_id, key: str, within_s: float = 60):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state.is_paused() and run.state.state_details.pause_key == key:
            return run
        time.sleep(0.2)
    raise AssertionError(f"the run is {run.state.name} ({run.state.state_details.pause_key})")


def form_shown(client, run, within_s: float = 30) -> str:
    """The description above the form of the attempt `run` waits at (saved just after the
    run pauses)."""
    import json

    import httpx

    key = run.state.state_details.run_input_keyset["description"]
    deadline = time.monotonic() + within_s
    while True:
        try:
            return json.loads(client.read_flow_run_input(run.id, key))
        except httpx.HTTPStatusError:
            assert time.monotonic() < deadline, f"no form description at {key}"
            time.sleep(0.2)


def test_the_gate_refuses_bad_decisions_and_keeps_waiting_then_takes_a_signed_one(
    waiting_gate, keys
):
    from prefect.flow_runs import resume_flow_run

    from fearless.release.approval_gate import await_verdict, gate_of, signed_input

    client, run_id, results = waiting_gate
    run = paused_at(client, run_id, "approval")
    first_gate = gate_of(client, run)
    assert first_gate.signing_required and first_gate.gate == f"{run_id}/approval"

    # CI's credential resumes the run straight through the API, in the CTO's name.
    resume_flow_run(run_id, run_input={"approve": True, "approver": "cto"}, _sync=True)
    assert await_verdict(client, run, timeout_s=60).note.startswith("unsigned")
    run = paused_at(client, run_id, "approval-1")
    assert gate_of(client, run).refused.startswith("unsigned")
    assert form_shown(client, run).startswith("**The last decision was refused:** unsigned")
    assert gate_of(client, run).deadline == first_gate.deadline

    # eve signs in ann's name with her own key.
    forged = sign(gate_of(client, run).statement(True, "ann"), keys["eve"])
    resume_flow_run(
        run_id, run_input={"approve": True, "approver": "ann", "signature": forged}, _sync=True
    )
    assert "is not in" in await_verdict(client, run, timeout_s=60).note
    run = paused_at(client, run_id, "approval-2")

    # ann's real signature for the first attempt, replayed.
    replayed = sign(first_gate.statement(True, "ann"), keys["ann"])
    resume_flow_run(
        run_id, run_input={"approve": True, "approver": "ann", "signature": replayed}, _sync=True
    )
    assert "not over this decision" in await_verdict(client, run, timeout_s=60).note
    run = paused_at(client, run_id, "approval-3")

    # What `fearless approve ... --key` sends: signed for this very attempt.
    good = signed_input(
        client, run, approve=True, approver="ann", comment="ship it", key=keys["ann"]
    )
    resume_flow_run(run_id, run_input=good, _sync=True)
    verdict = await_verdict(client, run, timeout_s=60)
    assert verdict.accepted and verdict.signed, verdict
    deadline = time.monotonic() + 60
    while "accepted" not in results and "error" not in results:
        assert time.monotonic() < deadline, "the probe flow never returned"
        time.sleep(0.2)
    accepted = results.get("accepted")
    assert accepted is not None, results.get("error")
    assert (accepted.approve, accepted.approver, accepted.signed) == (True, "ann", True)
    assert [attempt for attempt, _ in results["refused"]] == [0, 1, 2]


def test_a_run_resumed_after_a_crash_takes_the_decision_given_instead_of_waiting_again(platform):
    """Prefect forgets a run's pauses when it leaves Crashed; the gate must not suspend again
    (and fail on its own kept form, 409) where a decision was already given."""
    import json

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed, Paused, Running, Scheduled

    from fearless.release.approval_gate import wait_for_decision

    @flow(name="crash-resumed-gate-probe")
    def probe():
        pass

    def crash_resumed(client, decision: dict):
        """A run answered at its first gate, then lost and put back on its queue."""
        run = client.create_flow_run(probe)
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Paused(pause_key="approval"), force=True)
        client.create_flow_run_input(run.id, "approval-response", json.dumps(decision))
        client.set_flow_run_state(run.id, Running(), force=True)
        client.set_flow_run_state(run.id, Crashed(message="its process was lost"), force=True)
        client.set_flow_run_state(run.id, Scheduled(), force=True)  # as the cleanup resumes it
        assert client.read_flow_run(run.id).empirical_policy.pause_keys == set()
        return run.id

    def must_not_wait(**kwargs):
        raise AssertionError(f"the gate waited again at {kwargs['key']}")

    refused: list[str] = []

    def gate_of_run(client, run_id):
        return wait_for_decision(
            must_not_wait, client, run_id,
            release_id=RELEASE, digest=DIGEST, allowed_signers=None, timeout_s=300,
            form=lambda g: ApprovalDecision.with_initial_data(description="d", approve=False),
            refused=lambda attempt, d, check: refused.append(check.note), approvers=["ann"],
        )  # fmt: skip

    with get_client(sync_client=True) as client:
        approved = crash_resumed(client, {"approve": True, "approver": "ann", "comment": "ok"})
        accepted = gate_of_run(client, approved)
        assert (accepted.approve, accepted.approver, refused) == (True, "ann", [])

        by_eve = crash_resumed(client, {"approve": True, "approver": "eve"})
        with pytest.raises(AssertionError, match="waited again at approval-1"):
            gate_of_run(client, by_eve)  # refused as before; the next attempt does wait
        assert len(refused) == 1 and "eve" in refused[0], refused
