"""Is the candidate slower than the champion under the same load? A plain function of two results.

The margin is relative ("p95 may not grow more than 10%"); exactly at it passes. Locust rounds
latencies to whole milliseconds below 100 ms, so a latency may also grow by `min_delta_ms`
whatever the margin: 2 ms to 3 ms is rounding, not a regression.

A tail percentile of a short run is noise: from 120 requests a p99 is the slowest request or
two, and one pause of the machine doubles it (CI saw a champion's p99 of 3.3 ms against the
same model's 6.3 ms). So a latency past its limit is a regression only when the two runs tell
it apart: the candidate's percentile is past the limit even at the low end of its 95% bounds,
with the limit taken from the high end of the champion's (`LoadTestResult.latency_bounds_ms`).
Otherwise the check passes and the verdict notes why. A regression as large as the margin on
every request is still caught by a run long enough to bound the percentile that tightly.

Those bounds cover the requests' sampling, not the host changing pace between the two runs: on
a 2-core VM two runs of one candidate minutes apart differed by up to 78% in p95, each
bounded within 3%.
When the same fixed piece of CPU work took the host `HOST_SLOWER` longer during the
candidate's run than during the champion's (`HostLoad.work_unit_us`), a failing comparison is
inconclusive, as it is on a host busy with other work.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from fearless.loadtest.runner import LoadTestResult
from fearless.loadtest.verdict import DISTURBED_PCT, disturbance_reason, generator_reason

LATENCY_FIGURES = ("p95_ms", "p99_ms")
# The host took this much longer for the same work in the candidate's run than in the
# champion's: not the same host. Over 35 load tests on a 2-core VM (steal 0 throughout) the
# work unit took from 413 to 663 µs: the host moved between a fast pace (410-470 µs) and a
# slow one (600-660) over minutes.
HOST_SLOWER = 0.2


class RegressionCheck(BaseModel):
    name: str
    candidate: float
    champion: float
    limit: float
    bound: Literal["max", "min"]
    ok: bool


class RegressionVerdict(BaseModel):
    passed: bool
    inconclusive: bool
    margin: float
    reasons: list[str]
    checks: list[RegressionCheck]
    notes: list[str] = []


def _check(
    name: str, candidate: float, champion: float, limit: float, bound: Literal["max", "min"]
) -> RegressionCheck:
    limit = round(limit, 9)  # so 200 * 1.1 is 220 and a figure exactly at the margin passes
    ok = candidate <= limit if bound == "max" else candidate >= limit
    return RegressionCheck(
        name=name, candidate=candidate, champion=champion, limit=limit, bound=bound, ok=ok
    )


def _inconclusive(margin: float, reason: str, checks: list[RegressionCheck]) -> RegressionVerdict:
    return RegressionVerdict(
        passed=False, inconclusive=True, margin=margin, reasons=[reason], checks=checks
    )


def compare_to_champion(
    candidate: LoadTestResult,
    champion: LoadTestResult,
    margin: float,
    *,
    min_delta_ms: float = 1.0,
    saturation_cpu_pct: float = 90.0,
    disturbed_pct: float = DISTURBED_PCT,
) -> RegressionVerdict:
    """Compare p95/p99 latency (may grow by `margin`) and throughput (may drop by `margin`).

    Inconclusive, not failed, when the two runs were not the same load, either made no
    requests, or either generator could not do its part (see `generator_reason`), or it
    would fail while the candidate run's host was disturbed (see `disturbance_reason`) or
    ran slower than in the champion's run (see `slower_host_reason`).
    """
    if not 0 <= margin < 1:
        raise ValueError(f"regression margin must be in [0, 1), got {margin}")
    checks, notes = [], []
    for name in LATENCY_FIGURES:
        base = getattr(champion, name)
        limit = max(base * (1 + margin), base + min_delta_ms)
        check = _check(name, getattr(candidate, name), base, limit, "max")
        if not check.ok and (why := _within_noise(name, candidate, champion, margin, min_delta_ms)):
            check = check.model_copy(update={"ok": True})
            notes.append(why)
        checks.append(check)
    checks.append(_check("rps", candidate.rps, champion.rps, champion.rps * (1 - margin), "min"))

    loads = [(r.profile, r.mode, r.target_rps, r.users) for r in (candidate, champion)]
    if loads[0] != loads[1]:
        reason = f"inconclusive: candidate and champion ran different loads {loads}"
        return _inconclusive(margin, reason, checks)
    for role, result in (("candidate", candidate), ("champion", champion)):
        if result.requests == 0:
            return _inconclusive(margin, f"inconclusive: the {role} run made no requests", checks)
        if reason := generator_reason(result, saturation_cpu_pct, f" during the {role} run"):
            return _inconclusive(margin, reason, checks)
    reasons = [
        f"{c.name} {c.candidate:g} vs champion {c.champion:g}: "
        + (f"more than {margin:.0%} slower" if c.bound == "max" else f"{margin:.0%} lower or worse")
        + f" (limit {c.limit:g})"
        for c in checks
        if not c.ok
    ]
    # A disturbance only slows a run: it may excuse the candidate's failure. One that slowed the
    # champion's run instead shows in the evidence (the host's figures) but decides nothing.
    disturbed = disturbance_reason(
        candidate, disturbed_pct, " during the candidate run"
    ) or slower_host_reason(candidate, champion)
    if reasons and disturbed:
        return RegressionVerdict(
            passed=False, inconclusive=True, margin=margin, reasons=[disturbed, *reasons],
            checks=checks,
        )  # fmt: skip
    return RegressionVerdict(
        passed=not reasons,
        inconclusive=False,
        margin=margin,
        reasons=reasons,
        checks=checks,
        notes=notes,
    )


def slower_host_reason(
    candidate: LoadTestResult, champion: LoadTestResult, slower: float = HOST_SLOWER
) -> str | None:
    """Why a failing comparison cannot be judged because the host itself ran slower during the
    candidate's run than during the champion's, or None (either pace unknown: ECS tasks)."""
    mine, theirs = (r.host.work_unit_us if r.host else None for r in (candidate, champion))
    if not mine or not theirs or mine <= theirs * (1 + slower):
        return None
    return (
        "inconclusive: the host ran slower during the candidate run than during the champion's: "
        f"a fixed CPU work unit took {mine:.0f} µs against {theirs:.0f} µs "
        f"({mine / theirs - 1:.0%} longer, over {slower:.0%}), so the candidate's figures are "
        "the host's as much as its own. Run it again"
    )


def _within_noise(
    name: str, candidate: LoadTestResult, champion: LoadTestResult, margin: float, delta: float
) -> str | None:
    """Why `name`, past its limit, is not told apart from the champion's (None: it is)."""
    if name not in candidate.latency_bounds_ms or name not in champion.latency_bounds_ms:
        return None  # no bounds kept (an older result): the figures decide
    low, _ = candidate.latency_bounds_ms[name]
    _, champion_high = champion.latency_bounds_ms[name]
    limit = round(max(champion_high * (1 + margin), champion_high + delta), 9)
    if low > limit:
        return None
    return (
        f"{name} {getattr(candidate, name):g} vs champion {getattr(champion, name):g} is past "
        f"the margin, but {candidate.requests} and {champion.requests} requests cannot tell "
        f"them apart (95% bounds: candidate from {low:g}, champion up to {champion_high:g}): "
        "not a regression"
    )
