"""Did the candidate's API meet its SLOs under load? A plain function over the measured figures.

Exactly at a limit passes. A generator that was pegged (using, or waiting for, all of its CPU)
makes the run inconclusive rather than failed: its own queueing inflates the latency it
reports and caps the rate it can reach.
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


def saturation_reason(result: LoadTestResult, saturation_cpu_pct: float, run: str = "") -> str:
    """Why a run whose generator was saturated cannot be judged."""
    return (
        f"inconclusive: the load generator was busy {result.generator_busy_pct:.0f}% of its "
        f"cores{run} ({result.generator_cpu_pct:.0f}% running, "
        f"{result.generator_cpu_wait_pct:.0f}% waiting for a CPU; saturation at "
        f"{saturation_cpu_pct:g}%), so its figures are unreliable; give Locust more or "
        "quieter cores (processes) or lower the users"
    )


def evaluate_load_test(
    result: LoadTestResult, slos: SLOs, *, saturation_cpu_pct: float = 90.0
) -> LoadTestVerdict:
    """Compare the measured figures with the SLOs; saturation makes the verdict inconclusive."""
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
    reasons = [_reason(c, result) for c in checks if not c.ok]
    if result.generator_busy_pct >= saturation_cpu_pct:
        reasons.insert(0, saturation_reason(result, saturation_cpu_pct))
        return LoadTestVerdict(passed=False, inconclusive=True, reasons=reasons, checks=checks)
    return LoadTestVerdict(passed=not reasons, inconclusive=False, reasons=reasons, checks=checks)
