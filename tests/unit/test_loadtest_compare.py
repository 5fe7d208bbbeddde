import pytest

from fearless.loadtest.compare import compare_to_champion
from tests.unit.test_loadtest_verdict import disturbed, result

CHAMPION = result(p95_ms=200, p99_ms=400, rps=100.0)


def check(verdict, name):
    return next(c for c in verdict.checks if c.name == name)


def test_same_figures_pass():
    verdict = compare_to_champion(CHAMPION, CHAMPION, 0.1)
    assert verdict.passed and not verdict.inconclusive and verdict.reasons == []
    assert [c.name for c in verdict.checks] == ["p95_ms", "p99_ms", "rps"]


def test_exactly_at_the_margin_passes():
    candidate = result(p95_ms=220, p99_ms=440, rps=90.0)
    verdict = compare_to_champion(candidate, CHAMPION, 0.1)
    assert verdict.passed, verdict.reasons
    assert (check(verdict, "p95_ms").limit, check(verdict, "rps").limit) == (220, 90)


@pytest.mark.parametrize(
    ("figure", "value"), [("p95_ms", 220.01), ("p99_ms", 440.01), ("rps", 89.99)]
)
def test_just_past_the_margin_fails_and_says_which(figure, value):
    verdict = compare_to_champion(result(**{**CHAMPION.model_dump(), figure: value}), CHAMPION, 0.1)
    assert not verdict.passed and not verdict.inconclusive
    assert not check(verdict, figure).ok
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith(figure)


def test_a_faster_candidate_passes_a_zero_margin():
    assert compare_to_champion(result(p95_ms=150, p99_ms=300, rps=120), CHAMPION, 0.0).passed


def test_millisecond_rounding_is_not_a_regression():
    fast = result(p95_ms=2, p99_ms=3)
    assert compare_to_champion(result(p95_ms=3, p99_ms=4), fast, 0.1).passed
    assert not compare_to_champion(result(p95_ms=3.01, p99_ms=4), fast, 0.1).passed


@pytest.mark.parametrize(
    ("candidate", "champion", "why"),
    [
        (result(generator_cpu_pct=95), CHAMPION, "candidate run"),
        (result(), result(generator_cpu_pct=90), "champion run"),
        (result(requests=0), CHAMPION, "no requests"),
        (result(users=20), CHAMPION, "different loads"),
    ],
)
def test_unfair_comparisons_are_inconclusive(candidate, champion, why):
    verdict = compare_to_champion(candidate, champion, 0.1)
    assert verdict.inconclusive and not verdict.passed
    assert why in verdict.reasons[0]


def test_margin_must_be_a_share():
    with pytest.raises(ValueError, match="margin"):
        compare_to_champion(CHAMPION, CHAMPION, 1.5)


def test_a_champion_run_starved_of_cpu_is_inconclusive():
    starved = result(generator_cpu_pct=50, generator_cpu_wait_pct=40)
    verdict = compare_to_champion(CHAMPION, starved, 0.1)
    assert verdict.inconclusive and "during the champion run" in verdict.reasons[0]


def test_a_regression_on_a_disturbed_candidate_run_is_inconclusive():
    verdict = compare_to_champion(result(p95_ms=200, host=disturbed(50.0)), result(), 0.1)
    assert verdict.inconclusive and "during the candidate run" in verdict.reasons[0]
    assert any("p95_ms 200 vs champion 100" in r for r in verdict.reasons)


def test_a_disturbed_champion_run_decides_nothing():
    verdict = compare_to_champion(result(), result(p95_ms=150, host=disturbed(50.0)), 0.1)
    assert verdict.passed and not verdict.inconclusive


def test_a_regression_stands_when_only_the_champion_run_was_disturbed():
    verdict = compare_to_champion(result(p95_ms=200), result(host=disturbed(50.0)), 0.1)
    assert not verdict.passed and not verdict.inconclusive
