"""A model API that stopped during a gate decides the gate: failed, named, never inconclusive."""

from __future__ import annotations

from pathlib import Path

from fearless.drift.verdict import evaluate_drift
from fearless.environments import EnvironmentDown
from fearless.evidence.history import read_drift_scores
from fearless.loadtest.verdict import evaluate_load_test
from fearless.release.gates import DriftOutcome, LoadTestOutcome
from fearless.spec import DriftThresholds, SLOs
from tests.unit.test_loadtest_verdict import result

SCORES = read_drift_scores(
    Path(__file__).parent.parent / "fixtures" / "evidence" / "drift_scores.json"
)


def down(role: str) -> EnvironmentDown:
    return EnvironmentDown(role=role, reason="exited (signal 9)", during="8 s into the load test")


def test_a_dead_candidate_fails_the_load_gate_first_even_with_a_saturated_generator():
    saturated = result(generator_cpu_pct=99.0)
    outcome = LoadTestOutcome(
        result=saturated, verdict=evaluate_load_test(saturated, SLOs()), down=[down("candidate")]
    )
    assert outcome.verdict.inconclusive  # alone, the generator would make it inconclusive
    assert not outcome.passed and not outcome.inconclusive
    assert outcome.reasons[0] == "candidate model API exited (signal 9) 8 s into the load test"


def test_a_candidate_down_before_any_figure_still_fails_named():
    outcome = LoadTestOutcome(result=None, verdict=None, down=[down("candidate")])
    assert not outcome.passed and not outcome.inconclusive
    assert outcome.reasons == ["candidate model API exited (signal 9) 8 s into the load test"]


def test_a_dead_champion_does_not_fail_the_candidate():
    healthy = result()
    outcome = LoadTestOutcome(
        result=healthy, verdict=evaluate_load_test(healthy, SLOs()), down=[down("champion")]
    )
    assert outcome.passed and outcome.candidate_down is None


def test_a_candidate_that_died_by_the_drift_check_fails_the_drift_gate():
    verdict = evaluate_drift(SCORES, DriftThresholds(column_threshold=1, prediction_threshold=1))
    assert verdict.passed
    assert DriftOutcome(scores=SCORES, verdict=verdict).passed
    crashed = DriftOutcome(scores=SCORES, verdict=verdict, down=[down("candidate")])
    assert not crashed.passed and crashed.reasons[0].startswith("candidate model API exited")
