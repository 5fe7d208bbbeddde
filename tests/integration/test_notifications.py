"""Alerts go out through real Prefect notification blocks, stored on the shared Prefect server,
to a real HTTP receiver on loopback (the blocks' URL); nothing is sent when no block is named."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from prefect import flow
from prefect.states import Failed

from fearless.release.notifications import BlockNotifier, approval_notice
from tasks.notify import announce_release_end
from tests.receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def blocks(platform, receiver) -> list[str]:
    """A generic webhook and a Slack webhook block, both posting to the receiver. (A Slack
    block sends to any address that is not hooks.slack.com through Apprise: `json://` posts
    the message as JSON.)"""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook

    suffix = uuid4().hex[:8]
    CustomWebhookNotificationBlock(
        name="ops",
        url=f"http://127.0.0.1:{receiver.port}/hook",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save(f"test-hook-{suffix}")
    SlackWebhook(url=f"json://127.0.0.1:{receiver.port}/slack").save(f"test-slack-{suffix}")
    return [f"custom-webhook/test-hook-{suffix}", f"slack-webhook/test-slack-{suffix}"]


def test_the_approval_notice_reaches_every_named_block(blocks, receiver):
    notice = approval_notice(
        "credit-1a2b3c4d", "credit", "sha256:abc", "http://srv/evidence.html", "| p95 | 80 |\n"
    )

    assert BlockNotifier(blocks).send(notice) == []

    (hook,) = receiver.bodies("/hook")
    assert json.loads(hook)["subject"] == notice.subject
    text = json.loads(hook)["text"]
    assert "http://srv/evidence.html" in text and "| p95 | 80 |" in text
    assert "fearless approve credit-1a2b3c4d --by NAME" in text
    assert "fearless reject credit-1a2b3c4d --by NAME" in text
    (slack,) = receiver.bodies("/slack")
    assert json.loads(slack)["title"] == notice.subject
    assert "fearless approve credit-1a2b3c4d" in json.loads(slack)["message"]


def test_nothing_is_sent_when_no_block_is_named_and_a_missing_block_is_reported(blocks, receiver):
    notice = approval_notice("credit-1", "credit", "sha256:abc", "http://srv/e.html", "")

    assert BlockNotifier([]).send(notice) == []
    problems = BlockNotifier(["custom-webhook/no-such-block", blocks[0]]).send(notice)

    assert [p.split(":")[0] for p in problems] == ["custom-webhook/no-such-block"]
    assert len(receiver.bodies("/hook")) == 1 and receiver.received[0][0] == "/hook"


def test_drift_and_a_failed_release_go_out_from_their_flows(blocks, receiver, monkeypatch):
    """The drift-alert flow and the release pipeline's final-state hook, run for real on the
    shared server, with the blocks named in the settings (as the worker reads them)."""
    from flows.nightly_drift import drift_alert

    monkeypatch.setenv("FEARLESS_NOTIFICATION_BLOCKS", json.dumps(blocks[:1]))

    drift_alert("credit", {"rows": 120, "reasons": ["income drifted (0.31 >= 0.1)"]})

    @flow(name="release-pipeline-stand-in", on_failure=[announce_release_end])
    def pipeline(release_id: str):
        return Failed(name="GateFailed", message="load-test gate: p95 310 ms > 250 ms")

    pipeline("credit-0badcafe", return_state=True)

    drift, failed = (json.loads(body) for body in receiver.bodies("/hook"))
    assert "drift in production for credit" in drift["subject"]
    assert "income drifted" in drift["text"]
    assert failed["subject"] == "Fearless: release credit-0badcafe load-test-gate-failed"
    assert "p95 310 ms > 250 ms" in failed["text"] and "/runs/flow-run/" in failed["text"]
