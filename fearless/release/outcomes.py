"""What a release ended as, and the exit code CI gets for it.

Each outcome has its own exit code so a CI step (or a person) can tell a rejected candidate
from a failed gate, a timeout or a broken pipeline without reading logs.
"""

from __future__ import annotations

from enum import Enum

PAUSE_EXPIRED = "The flow was paused and never resumed."


class Outcome(str, Enum):
    promoted = "promoted"
    error = "error"
    rejected = "rejected"
    timed_out = "timed-out"
    load_test_failed = "load-test-gate-failed"
    drift_failed = "drift-gate-failed"
    inconclusive = "inconclusive"
    cancelled = "cancelled"
    watch_timeout = "watch-timeout"
    rolled_back = "rolled-back"
    bake_failed = "bake-failed"


EXIT_CODES = {
    Outcome.promoted: 0,
    Outcome.error: 1,
    Outcome.rejected: 10,
    Outcome.timed_out: 11,
    Outcome.load_test_failed: 12,
    Outcome.drift_failed: 13,
    Outcome.inconclusive: 14,
    Outcome.cancelled: 15,
    Outcome.watch_timeout: 16,
    Outcome.rolled_back: 17,
    Outcome.bake_failed: 18,
}


def outcome_of(state_type: str, state_name: str, message: str | None) -> Outcome:
    """Classify a release pipeline's final state (type and name as Prefect reports them)."""
    message = message or ""
    if state_type == "COMPLETED":
        return Outcome.promoted if state_name == "Promoted" else Outcome.error
    if state_type == "CANCELLED":
        return Outcome.cancelled
    if state_type == "FAILED":
        if state_name == "Rejected":
            return Outcome.rejected
        if state_name == "TimedOut" or message == PAUSE_EXPIRED:
            return Outcome.timed_out
        if state_name == "RolledBack":
            return Outcome.rolled_back
        if state_name == "BakeFailed":
            return Outcome.bake_failed
        if state_name == "Inconclusive":
            return Outcome.inconclusive
        if state_name == "GateFailed":
            return Outcome.drift_failed if message.startswith("drift") else Outcome.load_test_failed
    return Outcome.error
