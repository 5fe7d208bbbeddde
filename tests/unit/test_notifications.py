"""The alerts' text: the approval notice carries the figures an approver decides from."""

import pytest

from fearless.release.notifications import approval_notice, evidence_summary, release_failed_notice
from fearless.settings import Settings
from tests.unit.test_evidence import evidence


def test_the_summary_holds_gate_figures_drift_and_the_champion_comparison():
    ev = evidence()

    summary = evidence_summary(ev.load, ev.drift, ev.champion_digest)

    for check in [*ev.load.verdict.checks, *ev.drift.verdict.checks]:
        assert f"| {check.name} | {check.observed:.4g} | {check.limit:.4g} |" in summary
    assert f"{ev.drift.scores.drifted_share:.0%} of columns drifted" in summary
    assert "Champion: `sha256:champ`" in summary
    for check in ev.load.regression.checks:
        assert f"- {check.name}: candidate {check.candidate:.4g}" in summary


def test_a_first_release_says_there_is_no_champion():
    ev = evidence()

    assert "Champion: none (first release)." in evidence_summary(ev.load, ev.drift, None)


def test_the_notices_name_the_commands_and_the_run():
    notice = approval_notice("credit-1", "credit", "sha256:c", "https://srv/e.html", "figures\n")
    failed = release_failed_notice("credit-2", "drift-gate-failed", "drift gate: 40%", "http://u")

    assert "fearless approve credit-1 --by NAME" in notice.body
    assert "fearless reject credit-1 --by NAME" in notice.body
    assert "https://srv/e.html" in notice.body and "figures" in notice.body
    assert failed.subject.endswith("credit-2 drift-gate-failed") and "http://u" in failed.body


@pytest.mark.parametrize("ref", ["slack-webhook", "a/b/c", "/name", "slug/"])
def test_a_block_is_named_by_its_type_slug_and_name(ref, monkeypatch):
    monkeypatch.setenv("FEARLESS_NOTIFICATION_BLOCKS", f'["{ref}"]')

    with pytest.raises(ValueError, match="<block-type-slug>/<block-name>"):
        Settings()
