"""Did the candidate's API meet its SLOs under load? A plain function over the measured figures.

Exactly at a limit passes. In the open model the first question is whether the rate asked
for was sent: a shortfall with a generator that had CPU to spare is the API's (it could not
keep up, a failed gate); a shortfall with a pegged generator (using, or waiting for, all of
its CPU) is the generator's, and only that makes the run inconclusive. A busy generator that
still held the rate gives a conclusive run. In the closed model the generator sets the pace,
so a pegged one always makes the run inconclusive.

A run that would fail while other work disturbed its host (other processes or steal beyond
`disturbed_pct` of the host's cores) is inconclusive too: its figures may be the host's. A run
that passes in spite of a disturbance stands, since a disturbance only makes figures worse,
and so does a latency limit below even the run's fastest request (`beyond_any_host`): a quiet
host would not bring the API under it either.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from fearless.loadtest.runner import LoadTestResult
from fearless.spec import SLOs


class SLOCheck(BaseModel):
    name: str
    observed: float
    limit: float
    bound: Literal["max", "min"]
    ok: bool


class LoadTestVerdict(BaseModel):
    passed: bool
    inconclusive: bool
    reasons: list[str]
    checks: list[SLOCheck]


def _check(name: str, observed: float, limit: float, bound: Literal["max", "min"]) -> SLOCheck:
    ok = observed <= limit if bound == "max" else observed >= limit
    return SLOCheck(name=name, observed=observed, limit=limit, bound=bound, ok=ok)


def _reason(check: SLOCheck, result: LoadTestResult) -> str:
    side = "over the maximum" if check.bound == "max" else "under the minimum"
    text = f"{check.name} {check.observed:g} {side} of {check.limit:g}"
    if check.name == "error_rate" and result.top_errors:
        text += f" (most common: {result.top_errors[0]})"
    return text


HELD_SHARE = 0.95  # the open model's rate counts as held from this share of its requests
DISTURBED_PCT = 25.0  # other processes plus steal, in % of the host's cores, that cloud a run


def _busy(result: LoadTestResult, saturation_cpu_pct: float, run: str) -> str:
    return (
        f"busy {result.generator_busy_pct:.0f}% of its cores{run} "
        f"({result.generator_cpu_pct:.0f}% running, {result.generator_cpu_wait_pct:.0f}% "
        f"waiting for a CPU; saturation at {saturation_cpu_pct:g}%)"
    )


def _sent(result: LoadTestResult) -> str:
    return (
        f"{result.held_share:.0%} of the rate asked ({result.requests} of "
        f"{result.expected_requests:.0f} requests, {result.rps:.0f} req/s against up to "
        f"{result.target_rps:g})"
    )


def generator_reason(
    result: LoadTestResult, saturation_cpu_pct: float, run: str = ""
) -> str | None:
    """Why a run cannot be judged because of its load generator, or None when it can."""
    if result.generator_busy_pct < saturation_cpu_pct:
        return None
    if result.held_share is None:
        return (
            f"inconclusive: the load generator was {_busy(result, saturation_cpu_pct, run)} "
            "and the closed model lets it set the pace, so its figures are unreliable; give "
            "Locust more or quieter cores (processes), lower the users, or test a rate"
        )
    if result.held_share < HELD_SHARE:
        return (
            f"inconclusive: the load generator sent only {_sent(result)} while "
            f"{_busy(result, saturation_cpu_pct, run)}; give Locust more or quieter cores"
        )
    return None


def disturbance_reason(
    result: LoadTestResult, disturbed_pct: float = DISTURBED_PCT, run: str = ""
) -> str | None:
    """Why a failing run cannot be judged because its host was busy with other work, or None."""
    host = result.host
    if host is None or host.disturbance_pct <= disturbed_pct:
        return None
    return (
        f"inconclusive: the host was busy with other work{run}: {host.describe()}; other "
        f"processes and steal over {disturbed_pct:g}% of its cores make the figures the "
        "host's as much as the API's. Run it again on a quieter machine"
    )


# The fastest request, rounded as Locust rounds (to 5% above 100 ms), must exceed the limit
# by this much before no quieter host could have met it.
ROUNDING_SLACK = 1.1


def beyond_any_host(result: LoadTestResult, checks: list[SLOCheck]) -> dict[str, str]:
    """The failed latency limits that even the run's fastest request exceeded: check name to
    the reason that says so."""
    return {
        c.name: f"{c.name} {c.observed:g} over the maximum of {c.limit:g}, and even the fastest "
        f"request took {result.min_ms:g} ms: no quieter host would meet it"
        for c in checks
        if not c.ok and c.name in ("p95_ms", "p99_ms") and result.min_ms > c.limit * ROUNDING_SLACK
    }


def shortfall_reason(result: LoadTestResult) -> str | None:
    """Why the API failed to bear the open model's rate, or None when it held it."""
    if result.held_share is None or result.held_share >= HELD_SHARE:
        return None
    return f"the API held only {_sent(result)}, with the load generator to spare"


def evaluate_load_test(
    result: LoadTestResult,
    slos: SLOs,
    *,
    saturation_cpu_pct: float = 90.0,
    disturbed_pct: float = DISTURBED_PCT,
) -> LoadTestVerdict:
    """Did the API bear the rate asked (open model) and meet the SLOs? Inconclusive only when
    the generator could not do its part (see `generator_reason`), or a failing run's host was
    disturbed (see `disturbance_reason`)."""
    checks = [
        _check("p95_ms", result.p95_ms, slos.p95_ms, "max"),
        _check("p99_ms", result.p99_ms, slos.p99_ms, "max"),
        _check("error_rate", result.error_rate, slos.max_error_rate, "max"),
        _check("rps", result.rps, slos.min_rps, "min"),
    ]
    if result.requests == 0:
        reason = (
            f"no requests were made in {result.duration_s:g} s with {result.users} users: "
            "nothing to judge the SLOs on"
        )
        return LoadTestVerdict(passed=False, inconclusive=False, reasons=[reason], checks=checks)
    failed = [c for c in checks if not c.ok]
    reasons = [_reason(c, result) for c in failed]
    if generator := generator_reason(result, saturation_cpu_pct):
        return LoadTestVerdict(
            passed=False, inconclusive=True, reasons=[generator, *reasons], checks=checks
        )
    if hopeless := beyond_any_host(result, checks):
        # Each latency reason says why no host would do, in its place among the others.
        reasons = [hopeless.get(c.name, r) for c, r in zip(failed, reasons, strict=True)]
    if shortfall := shortfall_reason(result):
        reasons.insert(0, shortfall)
    if hopeless:
        return LoadTestVerdict(passed=False, inconclusive=False, reasons=reasons, checks=checks)
    if reasons and (disturbed := disturbance_reason(result, disturbed_pct)):
        return LoadTestVerdict(
            passed=False, inconclusive=True, reasons=[disturbed, *reasons], checks=checks
        )
    return LoadTestVerdict(passed=not reasons, inconclusive=False, reasons=reasons, checks=checks)
