import pytest

from fearless.loadtest.compare import compare_to_champion
from fearless.loadtest.host import HostLoad
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


def paced(work_unit_us: float | None) -> HostLoad:
    """A quiet host whose fixed CPU work unit took `work_unit_us`."""
    return HostLoad(cores=2, cpu_pct=30.0, steal_pct=0.0, others_pct=2.0, work_unit_us=work_unit_us)


def test_a_regression_while_the_host_ran_slower_than_for_the_champion_is_inconclusive():
    verdict = compare_to_champion(
        result(p95_ms=200, host=paced(650.0)), result(host=paced(440.0)), 0.1
    )
    assert verdict.inconclusive and not verdict.passed
    assert "took 650 µs against 440 µs (48% longer" in verdict.reasons[0]
    assert any("p95_ms 200 vs champion 100" in r for r in verdict.reasons[1:])


@pytest.mark.parametrize(
    ("candidate_us", "champion_us"),
    [(500.0, 440.0), (440.0, 650.0), (None, 440.0), (650.0, None)],
    ids=["within-20%", "champion-slower", "candidate-unknown", "champion-unknown"],
)
def test_a_regression_stands_unless_the_host_was_known_slower_for_the_candidate(
    candidate_us, champion_us
):
    verdict = compare_to_champion(
        result(p95_ms=200, host=paced(candidate_us)), result(host=paced(champion_us)), 0.1
    )
    assert not verdict.passed and not verdict.inconclusive
    assert verdict.reasons[0].startswith("p95_ms 200")


def test_a_slower_host_excuses_no_passing_candidate():
    verdict = compare_to_champion(result(host=paced(900.0)), result(host=paced(440.0)), 0.1)
    assert verdict.passed and not verdict.inconclusive


def runs_of(latencies_ms: list[int]) -> dict:
    """A result's figures as the runner keeps them, from each request's latency."""
    from fearless.loadtest.runner import latency_bounds, percentile

    histogram: dict[int, int] = {}
    for ms in latencies_ms:
        histogram[ms] = histogram.get(ms, 0) + 1
    return {
        "requests": len(latencies_ms),
        "p95_ms": percentile(histogram, 0.95),
        "p99_ms": percentile(histogram, 0.99),
        "latency_bounds_ms": latency_bounds(histogram),
    }


def test_bounds_hold_the_percentile_and_narrow_with_more_requests():
    from fearless.loadtest.runner import percentile_bounds

    few = {ms: 1 for ms in range(1, 121)}  # 120 requests, 1..120 ms
    many = {ms: 100 for ms in range(1, 121)}  # the same spread, 12,000 requests
    low, high = percentile_bounds(few, 0.99)
    assert low <= 119 <= high and (low, high) == (116, 120)
    low_many, high_many = percentile_bounds(many, 0.99)
    assert low_many <= 119 <= high_many and high_many - low_many < high - low
    assert percentile_bounds({}, 0.95) == (0.0, 0.0)


def test_one_slow_request_in_a_short_run_is_not_a_regression():
    """CI's case: the same model twice, 120 requests each; one pause doubled a p99."""
    steady = [3] * 118 + [4, 4]
    paused = [3] * 117 + [4, 7, 7]
    verdict = compare_to_champion(result(**runs_of(paused)), result(**runs_of(steady)), 0.1)
    assert verdict.passed and not verdict.reasons
    assert check(verdict, "p99_ms").candidate > check(verdict, "p99_ms").limit
    assert "cannot tell them apart" in verdict.notes[0] and verdict.notes[0].startswith("p99_ms")


def test_a_slower_candidate_fails_when_the_runs_tell_it_apart():
    champion = [3] * 1900 + [4] * 100
    slower = [6] * 1900 + [8] * 100  # every request twice as slow, 2,000 each
    verdict = compare_to_champion(result(**runs_of(slower)), result(**runs_of(champion)), 0.1)
    assert not verdict.passed and verdict.notes == []
    assert [r.split(" ", 1)[0] for r in verdict.reasons] == ["p95_ms", "p99_ms"]
