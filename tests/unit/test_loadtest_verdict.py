import json

import pytest

from fearless.loadtest.host import HostLoad
from fearless.loadtest.runner import (
    LoadTestResult,
    finer_percentiles,
    percentile,
    summarize_stats,
)
from fearless.loadtest.verdict import evaluate_load_test
from fearless.spec import SLOs
from simulations.latency import UNIT_MS, latency_bucket

SLO = SLOs(p95_ms=250, p99_ms=500, max_error_rate=0.01, min_rps=100)


def result(**figures) -> LoadTestResult:
    return LoadTestResult(
        **{
            "profile": "steady",
            "users": 10,
            "requests": 1000,
            "failures": 0,
            "rps": 150.0,
            "error_rate": 0.0,
            "p50_ms": 20,
            "p95_ms": 100,
            "p99_ms": 200,
            "duration_s": 10.0,
            "wall_s": 12.0,
            "generator_cpu_pct": 30.0,
            "generator_cpu_max_pct": 40.0,
            "generator_cores": 1,
            "report_html": "r.html",
            "csv_prefix": "r",
            "json_path": "r.json",
            "log_path": "r.log",
            **figures,
        }
    )


def check(verdict, name):
    return next(c for c in verdict.checks if c.name == name)


def test_all_within_slos_passes():
    verdict = evaluate_load_test(result(), SLO)
    assert verdict.passed and not verdict.inconclusive and verdict.reasons == []
    assert [c.name for c in verdict.checks] == ["p95_ms", "p99_ms", "error_rate", "rps"]


def test_exactly_at_every_limit_passes():
    at_limits = result(p95_ms=250, p99_ms=500, error_rate=0.01, rps=100)
    verdict = evaluate_load_test(at_limits, SLO)
    assert verdict.passed
    assert all(c.ok for c in verdict.checks)


@pytest.mark.parametrize(
    ("figure", "value"),
    [("p95_ms", 250.001), ("p99_ms", 500.001), ("error_rate", 0.0101), ("rps", 99.99)],
)
def test_just_past_a_limit_fails_and_says_which(figure, value):
    verdict = evaluate_load_test(result(**{figure: value}), SLO)
    assert not verdict.passed and not verdict.inconclusive
    assert not check(verdict, figure).ok
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith(figure)


def test_error_reason_names_the_most_common_error():
    failing = result(failures=500, error_rate=0.5, top_errors=["POST /predict: HTTP 500 (x500)"])
    verdict = evaluate_load_test(failing, SLO)
    assert "HTTP 500" in verdict.reasons[0]


def test_saturated_generator_is_inconclusive_not_failed():
    verdict = evaluate_load_test(result(generator_cpu_pct=90.0, p95_ms=900), SLO)
    assert verdict.inconclusive and not verdict.passed
    assert verdict.reasons[0].startswith("inconclusive") and "90%" in verdict.reasons[0]


def test_generator_just_under_saturation_is_conclusive():
    verdict = evaluate_load_test(result(generator_cpu_pct=89.9), SLO)
    assert verdict.passed and not verdict.inconclusive


def test_saturation_level_is_a_parameter():
    verdict = evaluate_load_test(result(generator_cpu_pct=70), SLO, saturation_cpu_pct=60)
    assert verdict.inconclusive


def test_zero_requests_fails_with_a_clear_reason():
    verdict = evaluate_load_test(result(requests=0, rps=0, p95_ms=0, p99_ms=0), SLOs())
    assert not verdict.passed and not verdict.inconclusive
    assert "no requests" in verdict.reasons[0]


# The figures the verdict is fed: Locust's JSON has one entry per endpoint and no total row.


def entry(name, histogram, failures=0, start=100.0, end=110.0) -> dict:
    return {
        "name": name,
        "num_requests": sum(histogram.values()),
        "num_failures": failures,
        "start_time": start,
        "last_request_timestamp": end,
        "response_times": {str(ms): count for ms, count in histogram.items()},
    }


def test_percentile_follows_locusts_rule():
    # Locust reports the value of request number int(n * q) + 1, counting from the fastest.
    histogram = {10: 90, 20: 5, 30: 4, 400: 1}
    assert percentile(histogram, 0.50) == 10
    assert percentile(histogram, 0.90) == 20
    assert percentile(histogram, 0.95) == 30
    assert percentile(histogram, 0.99) == 400
    assert percentile({}, 0.95) == 0


def test_endpoints_are_merged_before_taking_percentiles():
    stats = summarize_stats(
        [
            entry("/predict", {10: 60}, failures=2, start=100, end=108),
            entry("/other", {100: 40}, failures=3, start=102, end=110),
        ]
    )
    assert (stats["requests"], stats["failures"]) == (100, 5)
    assert stats["error_rate"] == 0.05
    assert stats["duration_s"] == 10 and stats["rps"] == 10
    assert (stats["p50_ms"], stats["p95_ms"]) == (10, 100)


def test_no_entries_means_zero_requests():
    stats = summarize_stats([])
    assert stats["requests"] == 0 and stats["rps"] == 0 and stats["error_rate"] == 0


def test_a_generator_starved_of_cpu_on_a_shared_machine_is_saturated_too():
    starved = result(generator_cpu_pct=45.0, generator_cpu_wait_pct=45.0)
    verdict = evaluate_load_test(starved, SLO)
    assert verdict.inconclusive and not verdict.passed
    assert "busy 90%" in verdict.reasons[0] and "45% waiting" in verdict.reasons[0]
    assert evaluate_load_test(result(generator_cpu_pct=45, generator_cpu_wait_pct=44.9), SLO).passed


# The open model: `rate` requests/s were asked for; did they go out, and whose fault if not?


def open_run(requests: int, **figures) -> LoadTestResult:
    """200 req/s asked for 10 s: 2000 requests expected."""
    asked = {"mode": "open", "target_rps": 200.0, "expected_requests": 2000.0}
    return result(**asked, requests=requests, rps=requests / 10, **figures)


def test_a_rate_the_api_cannot_hold_fails_the_gate_naming_the_shortfall():
    verdict = evaluate_load_test(open_run(1400), SLOs())
    assert not verdict.passed and not verdict.inconclusive
    assert verdict.reasons[0] == (
        "the API held only 70% of the rate asked (1400 of 2000 requests, 140 req/s against "
        "up to 200), with the load generator to spare"
    )


def test_the_rate_is_held_from_95_percent_of_its_requests():
    assert evaluate_load_test(open_run(1900), SLOs()).passed
    assert not evaluate_load_test(open_run(1899), SLOs()).passed


def test_a_busy_generator_that_still_held_the_rate_gives_a_conclusive_verdict():
    busy = open_run(1990, generator_cpu_pct=60.0, generator_cpu_wait_pct=39.0)
    assert evaluate_load_test(busy, SLOs()).passed
    slow = open_run(1990, generator_cpu_pct=99.0, p95_ms=300)
    verdict = evaluate_load_test(slow, SLOs())
    assert not verdict.passed and not verdict.inconclusive and "p95_ms 300" in verdict.reasons[0]


def test_only_a_busy_generator_that_could_not_send_the_rate_is_inconclusive():
    verdict = evaluate_load_test(open_run(1000, generator_cpu_pct=95.0), SLOs())
    assert verdict.inconclusive and not verdict.passed
    assert verdict.reasons[0].startswith("inconclusive: the load generator sent only 50%")
    assert "busy 95%" in verdict.reasons[0]


def test_finer_percentiles_come_to_a_hundredth_when_the_histogram_saw_every_request(tmp_path):
    path = tmp_path / "latency.json"
    counts = {"122": 50, "125": 45, "131": 4, "1200": 1}  # hundredths of a ms
    path.write_text(json.dumps({"unit_ms": 0.01, "counts": counts}))
    # Locust's own percentile rule, on hundredths instead of whole milliseconds
    assert finer_percentiles(path, 100) == {
        "p50_ms": 1.25,
        "p95_ms": 1.31,
        "p99_ms": 12.0,
        "min_ms": 1.22,
        # 95% bounds of p95 and p99: ranks 90..100 and 97..100 of the 100 requests
        "latency_bounds_ms": {"p95_ms": (1.25, 12.0), "p99_ms": (1.31, 12.0)},
    }
    assert finer_percentiles(path, 101) is None  # forked workers kept some: Locust's figures
    assert finer_percentiles(tmp_path / "none.json", 100) is None


@pytest.mark.parametrize(
    ("ms", "bucket"),
    [(0.004, 0), (1.234, 123), (1.236, 124), (9.994, 999), (12.34, 1230), (12.36, 1240),
     (99.94, 9990), (123.4, 12300), (1234.5, 123400)],
)  # fmt: skip
def test_a_latency_is_kept_to_one_percent_or_finer(ms, bucket):
    assert latency_bucket(ms) == bucket
    if ms >= 1:
        assert abs(bucket * UNIT_MS - ms) <= 0.01 * ms


def disturbed(others_pct: float, steal_pct: float = 0.0) -> HostLoad:
    return HostLoad(
        cores=2, cpu_pct=80.0, steal_pct=steal_pct, others_pct=others_pct,
        top_others=["python3 (pid 42): 95% of a core"],
    )  # fmt: skip


def test_a_failing_run_on_a_disturbed_host_is_inconclusive_and_names_the_disturber():
    verdict = evaluate_load_test(result(p95_ms=400, host=disturbed(45.0)), SLO)
    assert verdict.inconclusive and not verdict.passed
    assert "host was busy with other work" in verdict.reasons[0]
    assert "python3 (pid 42)" in verdict.reasons[0] and "other processes 45%" in verdict.reasons[0]
    assert any(r.startswith("p95_ms 400") for r in verdict.reasons[1:])


def test_steal_counts_as_disturbance():
    verdict = evaluate_load_test(result(p95_ms=400, host=disturbed(10.0, steal_pct=20.0)), SLO)
    assert verdict.inconclusive and "steal 20%" in verdict.reasons[0]


def test_a_passing_run_stands_in_spite_of_a_disturbance():
    """A disturbance only slows a run: passing in spite of one is still a pass."""
    verdict = evaluate_load_test(result(host=disturbed(60.0)), SLO)
    assert verdict.passed and not verdict.inconclusive


def test_a_limit_below_even_the_fastest_request_fails_on_a_disturbed_host_too():
    """A disturbance delays some requests; the fastest one is the API at its best. Once even it
    took longer than a limit, no quieter host would meet that limit: a failure, not noise."""
    slow_api = result(p95_ms=400, min_ms=300, host=disturbed(60.0))
    verdict = evaluate_load_test(slow_api, SLO)
    assert not verdict.passed and not verdict.inconclusive
    assert verdict.reasons[0].startswith("p95_ms 400 over the maximum of 250, and even the fastest")
    # Within Locust's rounding of the fastest request, or below the limit: still the host's.
    for fastest in (270, 100):
        verdict = evaluate_load_test(result(p95_ms=400, min_ms=fastest, host=disturbed(60.0)), SLO)
        assert verdict.inconclusive, fastest


def test_a_slow_api_that_missed_the_rate_names_the_shortfall_first():
    """The rate missed says most about the API; the hopeless latency limit follows it."""
    verdict = evaluate_load_test(open_run(1400, p95_ms=400, min_ms=300), SLO)
    assert not verdict.passed and not verdict.inconclusive
    assert verdict.reasons[0].startswith("the API held only 70%")
    assert verdict.reasons[1].startswith("p95_ms 400 over the maximum of 250, and even the")
    assert "p95_ms 400 over the maximum of 250" not in verdict.reasons


def test_the_fastest_request_is_read_from_locusts_histogram():
    entries = [{"response_times": {"7": 2, "12": 1}, "num_requests": 3, "num_failures": 0}]
    assert summarize_stats(entries)["min_ms"] == 7.0


def test_a_quiet_host_leaves_a_failure_a_failure():
    verdict = evaluate_load_test(result(p95_ms=400, host=disturbed(24.9)), SLO)
    assert not verdict.passed and not verdict.inconclusive
