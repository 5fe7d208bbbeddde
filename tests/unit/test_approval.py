import json

import pytest
from pydantic import ValidationError

from fearless.release.approval import ApprovalDecision, record_decision


def test_form_defaults_to_reject_and_requires_an_approver():
    schema = ApprovalDecision.model_json_schema()
    assert schema["properties"]["approve"]["default"] is False
    assert "approver" in schema["required"]
    with pytest.raises(ValidationError, match="approver"):
        ApprovalDecision(approve=True, approver="")


def test_decisions_are_appended_with_what_was_shown(tmp_path):
    for approver in ("ann", "bob"):
        record_decision(
            tmp_path,
            "credit",
            "credit-1",
            "sha256:a",
            {"approve": approver == "ann", "approver": approver, "comment": ""},
            {"p95_ms": 12.5},
        )
    lines = [
        json.loads(x) for x in (tmp_path / "credit" / "decisions.jsonl").read_text().splitlines()
    ]
    assert [(x["approver"], x["approve"], x["shown"]["p95_ms"]) for x in lines] == [
        ("ann", True, 12.5),
        ("bob", False, 12.5),
    ]


def test_the_form_keeps_its_fields_in_order_and_names_to_what_can_be_signed():
    """The UI lists the fields in this order (the e2e UI test fills them by position); an
    approver's name is a single word, as in an allowed_signers file and a signed statement."""
    assert list(ApprovalDecision.model_json_schema()["properties"]) == [
        "approve",
        "approver",
        "comment",
        "signature",
    ]
    assert ApprovalDecision(approver="ann.lee@example.com").signature == ""
    for name in ("ann lee", "ann\ndecision: approve", "*", "-ann"):
        with pytest.raises(ValidationError, match="approver"):
            ApprovalDecision(approver=name)
