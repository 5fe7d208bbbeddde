import pytest

from fearless.release.outcomes import EXIT_CODES, PAUSE_EXPIRED, Outcome, outcome_of


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (("COMPLETED", "Promoted", "sha256:x serves"), Outcome.promoted),
        (("COMPLETED", "Completed", ""), Outcome.error),
        (("FAILED", "Rejected", "rejected by ann"), Outcome.rejected),
        (("FAILED", "TimedOut", "approval timed out"), Outcome.timed_out),
        (("FAILED", "Failed", PAUSE_EXPIRED), Outcome.timed_out),
        (("FAILED", "GateFailed", "load-test gate: p95 300 > 250"), Outcome.load_test_failed),
        (("FAILED", "GateFailed", "drift gate: 3 columns drifted"), Outcome.drift_failed),
        (("FAILED", "Inconclusive", "load test: generator saturated"), Outcome.inconclusive),
        (("FAILED", "Failed", "BundleError: model.joblib"), Outcome.error),
        (("CRASHED", "Crashed", "exit 1"), Outcome.error),
        (("CANCELLED", "Cancelled", None), Outcome.cancelled),
        (("FAILED", "RolledBack", "rolled back to sha256:a: p95 9 ms > 1 ms"), Outcome.rolled_back),
        (("FAILED", "BakeFailed", "bake failed: 50 requests"), Outcome.bake_failed),
    ],
)
def test_each_final_state_has_its_outcome(state, expected):
    assert outcome_of(*state) is expected


def test_exit_codes_are_distinct_and_only_promotion_is_zero():
    codes = list(EXIT_CODES.values())
    assert len(set(codes)) == len(codes) == len(Outcome)
    assert [o for o, c in EXIT_CODES.items() if c == 0] == [Outcome.promoted]
