"""The bake window: after a promotion, watch production and roll back if it breaks the spec.

Production's counts are read at the start of the window and again every few seconds; the
difference is what production served since the switch. Where the production service has a
front that logs (`bake_window`, the local nginx front: its access log, see `front_log`) they
come from there; otherwise (ECS, behind the ALB) from `/metrics` at production's address (the
model API's Prometheus counters). Only prediction routes count, and only 5xx answers are
errors (a client's bad input is not the model's fault). The p95 is estimated from latency
buckets, the way Prometheus' `histogram_quantile` does.

Shadow traffic: where the production service can mirror (the local front, `bake_window` with a
`shadow` bundle), the previous version answers a copy of every live request, unseen by clients,
and both versions' inference-log rows of the same records are paired by request id (see
`shadow`). The window then also counts how many records got the same prediction (agreement) and
how far the scores moved (mean absolute difference), and rolls back past the spec's
`min_agreement` / `max_prediction_shift`, as it does for errors and latency.

On ECS the ALB cannot mirror: each production task's model API copies a sample of its requests
(fire and forget, after answering) to the previous version, run for the window as the release's
`shadow` environment under a Cloud Map name production's revisions already carry; both ship
their inference logs to S3, where the same pairing by request id runs over the two digests'
rows (see `fearless.production.ecs`).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from fearless.production.promotion import PromotionResult, RollbackError, rollback
from fearless.spec import ModelSpec

BAKE_ACTOR = "fearless-bake"
REQUESTS = "fearless_http_requests"
LATENCY = "fearless_http_request_duration_seconds"
SERVED_ROUTE_ENDINGS = ("predict", "infer")


class Scrape(BaseModel):
    """Prediction traffic counted so far: requests, 5xx answers, latency buckets (s, count)."""

    requests: float = 0.0
    server_errors: float = 0.0
    buckets: list[tuple[float, float]] = []
    compared: float = 0.0
    """Records both versions scored (production and its shadow), paired by request."""
    agreed: float = 0.0
    """Of those, the records both versions gave the same prediction."""
    shift: float = 0.0
    """Sum over the compared records of |score (or numeric prediction) difference|."""


class BakeVerdict(BaseModel):
    passed: bool
    requests: int = 0
    error_rate: float | None = None
    p95_ms: float | None = None
    compared: int = 0
    agreement: float | None = None
    prediction_shift: float | None = None
    watched_s: float = 0.0
    reasons: list[str] = []
    notes: list[str] = []

    def summary(self) -> str:
        measured = f"{self.requests} requests in {self.watched_s:.0f} s"
        if self.error_rate is not None:
            measured += f", error rate {self.error_rate:.2%}"
        if self.p95_ms is not None:
            measured += f", p95 {self.p95_ms:.1f} ms"
        if self.agreement is not None:
            measured += f"; against the previous version on {self.compared} records: agreement "
            measured += f"{self.agreement:.2%}"
        if self.prediction_shift is not None:
            measured += f", mean score shift {self.prediction_shift:.4f}"
        return "; ".join([measured, *self.reasons, *self.notes])


def _served(labels: dict[str, str]) -> bool:
    return labels.get("route", "").endswith(SERVED_ROUTE_ENDINGS)


def parse_scrape(text: str) -> Scrape:
    """The prediction traffic in one Prometheus text scrape of a model API."""
    requests = errors = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not _served(sample.labels):
                continue
            if sample.name == f"{REQUESTS}_total":
                requests += sample.value
                errors += sample.value if sample.labels.get("code", "").startswith("5") else 0
            elif sample.name == f"{LATENCY}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Scrape(requests=requests, server_errors=errors, buckets=sorted(buckets.items()))


def _since(before: Scrape, after: Scrape) -> Scrape:
    """What was counted between two scrapes (all of `after` if its counters were reset)."""
    if after.requests < before.requests:
        return after
    return Scrape(
        requests=after.requests - before.requests,
        server_errors=after.server_errors - before.server_errors,
        buckets=[(bound, count - _count_at(before, bound)) for bound, count in after.buckets],
        compared=after.compared - before.compared,
        agreed=after.agreed - before.agreed,
        shift=after.shift - before.shift,
    )


def _count_at(scrape: Scrape, bound: float) -> float:
    """How many of `scrape` took at most `bound` (its buckets may have other bounds)."""
    at = bisect.bisect_right([b for b, _ in scrape.buckets], bound)
    return scrape.buckets[at - 1][1] if at else 0.0


def quantile_s(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile from cumulative buckets, interpolated within its bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all we know
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def evaluate_bake(before: Scrape, after: Scrape, spec: ModelSpec) -> BakeVerdict:
    """Did production meet the bake thresholds between the two scrapes?"""
    seen = _since(before, after)
    requests = int(seen.requests)
    max_error_rate = spec.bake.max_error_rate
    max_error_rate = spec.slos.max_error_rate if max_error_rate is None else max_error_rate
    p95_limit = spec.bake.p95_ms if spec.bake.p95_ms is not None else spec.slos.p95_ms
    if requests < spec.bake.min_requests:
        note = f"only {requests} requests (< {spec.bake.min_requests}): too little traffic to judge"
        return BakeVerdict(passed=True, requests=requests, notes=[note])
    error_rate = seen.server_errors / seen.requests
    p95 = quantile_s(0.95, seen.buckets)
    p95_ms = None if p95 is None else p95 * 1000
    reasons = []
    if error_rate > max_error_rate:
        reasons.append(f"error rate {error_rate:.2%} > {max_error_rate:.2%}")
    if p95_ms is not None and p95_ms > p95_limit:
        reasons.append(f"p95 {p95_ms:.3f} ms > {p95_limit:g} ms")
    verdict = BakeVerdict(
        passed=not reasons,
        requests=requests,
        error_rate=error_rate,
        p95_ms=p95_ms,
        reasons=reasons,
    )
    return _judge_shadow(seen, spec, verdict)


def _judge_shadow(seen: Scrape, spec: ModelSpec, verdict: BakeVerdict) -> BakeVerdict:
    """Add the comparison with the previous version, a reason where it passes a threshold."""
    compared = int(seen.compared)
    if compared == 0:
        return verdict
    verdict.compared = compared
    verdict.agreement = seen.agreed / compared
    verdict.prediction_shift = seen.shift / compared
    if compared < spec.bake.min_requests:
        verdict.notes.append(
            f"only {compared} records compared with the previous version "
            f"(< {spec.bake.min_requests}): too few to judge prediction drift"
        )
        return verdict
    least, most = spec.bake.min_agreement, spec.bake.max_prediction_shift
    if least is not None and verdict.agreement < least:
        verdict.reasons.append(
            f"prediction agreement with the previous version {verdict.agreement:.2%} "
            f"< {least:.2%} on {compared} records"
        )
    if most is not None and verdict.prediction_shift > most:
        verdict.reasons.append(
            f"prediction drift from the previous version: mean score shift "
            f"{verdict.prediction_shift:.4f} > {most:g} on {compared} records"
        )
    verdict.passed = not verdict.reasons
    return verdict


def scrape_metrics(url: str) -> Scrape:
    answer = httpx.get(f"{url}/metrics", timeout=10)
    answer.raise_for_status()
    return parse_scrape(answer.text)


def watch(
    url: str,
    spec: ModelSpec,
    *,
    interval_s: float = 2.0,
    scrape: Callable[[str], Scrape] = scrape_metrics,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    settled: Callable[[], bool] = lambda: True,
) -> BakeVerdict:
    """Watch `url` for the spec's window; stop early at the first breach seen once a shadow
    started beside the watch has compared enough to judge (`min_requests` records, or one
    interval since `settled`), so its reasons are in the verdict too. A watch that waited for
    the shadow before it began stopped one interval after it: this one stops no later than
    an interval after that, and sooner where traffic fills the comparison first."""
    window = spec.bake.window_s
    if window == 0:
        return BakeVerdict(passed=True, notes=["bake window disabled (bake.window_s: 0)"])
    started = clock()
    try:
        before = scrape(url)
        settled_at = started if settled() else None
        while True:
            sleep(max(0.0, min(interval_s, started + window - clock())))
            verdict = evaluate_bake(before, scrape(url), spec)
            now = clock()
            verdict.watched_s = now - started
            if settled_at is None and settled():
                settled_at = now
            compared_enough = settled_at is not None and (
                now - settled_at >= interval_s or verdict.compared >= spec.bake.min_requests
            )
            if (not verdict.passed and compared_enough) or verdict.watched_s >= window:
                return verdict
    except (httpx.HTTPError, OSError) as exc:
        reason = f"production figures unreadable: {exc!r}"
        return BakeVerdict(passed=False, watched_s=clock() - started, reasons=[reason])


@dataclass(frozen=True)
class WindowReader:
    """What a production's bake window yields: its figures so far, and whether a comparison
    with a shadow may still begin (a breach ends the watch only once none can)."""

    read: Callable[[], Scrape]
    settled: Callable[[], bool] = lambda: True


def _watch(
    url: str, spec: ModelSpec, production, model: str, shadow=None, release_id: str | None = None
) -> BakeVerdict:
    """Watch through the production service's window where it has one (the local front's log,
    ECS's `/metrics`), else `/metrics` at `url`; where it can, `shadow` (the previous version's
    bundle) answers a copy of the requests, run for `release_id` until the window's end."""
    window = getattr(production, "bake_window", None)
    if window is None or spec.bake.window_s == 0:
        return watch(url, spec)
    until = datetime.now(UTC) + timedelta(seconds=spec.bake.window_s)
    with window(model, shadow=shadow, release_id=release_id, until=until) as reader:
        if reader is None:  # no front of its own serves the model now
            return watch(url, spec)
        return watch(url, spec, scrape=lambda _url: reader.read(), settled=reader.settled)


class BakeResult(BaseModel):
    model: str
    digest: str
    verdict: BakeVerdict
    rolled_back_to: str | None = None
    """The digest production went back to, when the bake failed and there was one."""


def bake(
    promotion: PromotionResult,
    spec: ModelSpec,
    registry,
    production,
    *,
    watcher: Callable[[str, ModelSpec], BakeVerdict] | None = None,
    release_id: str | None = None,
) -> BakeResult:
    """Watch a fresh promotion; on a breach put the previous version back (alias and service).
    `release_id`: whose resources a shadow the window starts are (tagged, torn down)."""
    model, digest = promotion.model, promotion.digest
    if registry.get_alias(model, "production") != digest:
        note = f"not baked: {model}:production moved on from {digest} since its promotion"
        return BakeResult(
            model=model, digest=digest, verdict=BakeVerdict(passed=True, notes=[note])
        )
    if watcher is None:
        shadow = None
        if spec.bake.shadow and promotion.previous_digest not in (None, digest):
            shadow = registry.get_bundle(model, promotion.previous_digest)
        verdict = _watch(promotion.url, spec, production, model, shadow, release_id)
        if shadow is not None and verdict.compared == 0 and spec.bake.window_s:
            verdict.notes.append("no record compared with the previous version")
    else:
        verdict = watcher(promotion.url, spec)
    result = BakeResult(model=model, digest=digest, verdict=verdict)
    if verdict.passed:
        return result
    if registry.get_alias(model, "production") != digest:
        verdict.notes.append(f"not rolled back: {model}:production moved on during the bake")
        return result
    reason = f"bake of {digest} failed: {'; '.join(verdict.reasons)}"
    try:
        back = rollback(model, registry, production, actor=BAKE_ACTOR, reason=reason)
    except RollbackError as exc:
        verdict.notes.append(f"{exc}: still serving {digest}")
        return result
    return result.model_copy(update={"rolled_back_to": back.digest})
