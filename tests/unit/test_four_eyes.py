"""Who may decide a release: the spec's approvers, and never whoever started it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fearless.bundles.source import without_credentials
from fearless.release.approval import ApprovalDecision, ApprovalGate, check_decision
from fearless.release.four_eyes import policy_refusal, same_person, starting_user
from fearless.spec import SpecError, load_spec

AUTHOR = "Dana Lee <dana.lee@example.com>"


def gate(**changes) -> ApprovalGate:
    fields = {
        "release_id": "credit-1234abcd",
        "digest": "sha256:" + "ab" * 32,
        "gate": "run/approval",
        "signing_required": False,
        "deadline": datetime.now(UTC) + timedelta(hours=1),
    }
    return ApprovalGate(**{**fields, **changes})


@pytest.mark.parametrize(
    ("approver", "identity"),
    [
        ("root", "root"),
        ("dana.lee", AUTHOR),
        ("Dana.Lee", AUTHOR),
        ("dana.lee@example.com", AUTHOR),
        ("dana", "Dana <dana+ci@example.com>"),
        ("octocat", "Octo <12345+octocat@users.noreply.github.com>"),
    ],
)
def test_a_starter_is_known_by_login_email_or_its_local_part(approver, identity):
    assert same_person(approver, ["someone-else", identity]) == identity


@pytest.mark.parametrize("approver", ["dan", "lee", "example.com", "erin"])
def test_other_people_are_not_the_starter(approver):
    assert same_person(approver, ["root", AUTHOR]) is None


def test_whoever_started_a_release_cannot_approve_it_but_may_reject_it():
    refusal = policy_refusal(True, "dana.lee", [], ["root", AUTHOR])
    assert refusal == (
        f"four eyes: dana.lee started this release ({AUTHOR}), so someone else must approve it"
    )
    assert policy_refusal(False, "dana.lee", [], ["root", AUTHOR]) is None
    assert policy_refusal(True, "erin", [], ["root", AUTHOR]) is None


def test_only_listed_approvers_decide_when_the_model_lists_them():
    listed = ["ann", "bob"]
    assert policy_refusal(True, "ann", listed, []) is None
    refusal = "erin is not an approver of this model (approval.approvers: ann, bob)"
    assert policy_refusal(True, "erin", listed, []) == refusal
    assert policy_refusal(False, "erin", listed, []) == refusal  # nor reject
    assert policy_refusal(True, "Ann", listed, []) is not None  # names as allowed_signers has them


def test_the_gate_checks_the_policy_on_unsigned_decisions_and_says_why():
    policed = gate(approvers=["ann", "dana.lee"], starters=[AUTHOR])
    own = check_decision(ApprovalDecision(approve=True, approver="dana.lee"), policed, None)
    assert not own.accepted and own.note.startswith("four eyes: dana.lee started")
    other = check_decision(ApprovalDecision(approve=True, approver="erin"), policed, None)
    assert not other.accepted and "not an approver" in other.note
    ann = check_decision(ApprovalDecision(approve=True, approver="ann"), policed, None)
    assert ann.accepted and ann.note.startswith("unsigned")


def test_who_started_comes_from_ci_or_the_terminal():
    assert starting_user("ci", {"GITHUB_ACTOR": "octocat"}) == "octocat"
    assert starting_user("cli", {"GITLAB_USER_LOGIN": "dana"}) == "dana"
    assert starting_user("ci", {}) is None  # CI's own login is no one's
    assert starting_user("prefect", {"GITHUB_ACTOR": "x"}) is None  # the UI has no users
    assert starting_user("cli", {}) not in (None, "")


def test_the_spec_lists_approvers_by_plain_names(tmp_path):
    spec = tmp_path / "fearless.yaml"
    base = "name: credit\nmodel: m.joblib\nreference_data: r.parquet\nschema: {age: {type: int}}\n"
    spec.write_text(base + "approval: {approvers: [ann, bob]}\n")
    assert load_spec(spec).approval.approvers == ["ann", "bob"]
    spec.write_text(base + "approval: {approvers: ['ann lee']}\n")
    with pytest.raises(SpecError, match="approval.approvers"):
        load_spec(spec)


@pytest.mark.parametrize(
    ("remote", "shown"),
    [
        ("https://gitlab-ci-token:s3cr3t@gitlab.com/a/b.git", "https://gitlab.com/a/b.git"),
        ("https://x-access-token:s3cr3t@github.com/a/b", "https://github.com/a/b"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ],
)
def test_a_remote_is_recorded_without_its_credentials(remote, shown):
    assert without_credentials(remote) == shown
