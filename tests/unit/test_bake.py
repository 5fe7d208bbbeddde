"""The bake verdict at its boundaries, the watch loop on a fake clock, and the rollback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from fearless.production.bake import (
    BAKE_ACTOR,
    BakeVerdict,
    Scrape,
    bake,
    evaluate_bake,
    parse_scrape,
    quantile_s,
    watch,
)
from fearless.production.promotion import PromotionResult, promote
from fearless.registry.local import LocalRegistry
from fearless.serving.metrics import Metrics
from fearless.spec import ModelSpec
from tests.unit.test_promotion import BundleRegistry, FakeBundle, FakeProduction

INF = float("inf")
ZERO = Scrape()


def spec_with(**bake) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "credit",
            "model": "model.joblib",
            "reference_data": "reference.parquet",
            "schema": {"age": "int"},
            "slos": {"p95_ms": 250, "max_error_rate": 0.01},
            "bake": bake,
        }
    )


def traffic(requests: int, errors: int = 0, under_250ms: int | None = None) -> Scrape:
    """`requests` of which `under_250ms` took at most 250 ms and the rest at most 500 ms."""
    fast = requests if under_250ms is None else under_250ms
    buckets = [(0.25, float(fast)), (0.5, float(requests)), (INF, float(requests))]
    return Scrape(requests=requests, server_errors=errors, buckets=buckets)


def test_parse_counts_prediction_routes_and_5xx_only():
    metrics = Metrics()
    metrics.observe("/predict", 200, 0.003)
    metrics.observe("/v2/models/{name}/infer", 500, 0.2)
    metrics.observe("/predict", 422, 0.001)
    metrics.observe("/ready", 503, 0.001)
    scrape = parse_scrape(metrics.render().decode())
    assert scrape.requests == 3 and scrape.server_errors == 1
    assert dict(scrape.buckets)[0.005] == 2 and scrape.buckets[-1] == (INF, 3)


def test_quantile_interpolates_within_its_bucket():
    assert quantile_s(0.95, [(0.001, 10.0), (INF, 10.0)]) == pytest.approx(0.00095)
    assert quantile_s(0.95, [(0.25, 95.0), (0.5, 100.0), (INF, 100.0)]) == 0.25
    assert quantile_s(0.95, [(5.0, 0.0), (INF, 10.0)]) == 5.0  # past the last finite bucket
    assert quantile_s(0.95, [(0.25, 0.0), (INF, 0.0)]) is None


def test_error_rate_at_the_limit_passes_and_above_it_rolls_back():
    spec = spec_with(min_requests=10)
    assert evaluate_bake(ZERO, traffic(100, errors=1), spec).passed
    verdict = evaluate_bake(ZERO, traffic(100, errors=2), spec)
    assert not verdict.passed and verdict.reasons == ["error rate 2.00% > 1.00%"]


def test_p95_at_the_limit_passes_and_above_it_rolls_back():
    spec = spec_with(min_requests=10)
    assert evaluate_bake(ZERO, traffic(100, under_250ms=95), spec).p95_ms == 250
    assert evaluate_bake(ZERO, traffic(100, under_250ms=95), spec).passed
    verdict = evaluate_bake(ZERO, traffic(100, under_250ms=94), spec)
    assert not verdict.passed and verdict.reasons[0].startswith("p95 ")


def test_own_thresholds_override_the_slos():
    spec = spec_with(min_requests=10, p95_ms=100, max_error_rate=0.5)
    verdict = evaluate_bake(ZERO, traffic(100, errors=40), spec)
    assert not verdict.passed and verdict.reasons == ["p95 237.500 ms > 100 ms"]


def test_too_little_traffic_passes_with_a_note():
    spec = spec_with(min_requests=20)
    verdict = evaluate_bake(traffic(100), traffic(119, errors=19), spec)
    assert verdict.passed and verdict.requests == 19 and "too little traffic" in verdict.notes[0]
    assert not evaluate_bake(traffic(100), traffic(120, errors=20), spec).passed


def test_only_traffic_between_the_scrapes_counts_and_a_reset_counts_from_zero():
    spec = spec_with(min_requests=10)
    assert evaluate_bake(traffic(1000, errors=500), traffic(1100, errors=500), spec).passed
    reset = evaluate_bake(traffic(1000), traffic(50, errors=25), spec)
    assert reset.requests == 50 and not reset.passed


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_watch_runs_the_whole_window_when_healthy_and_stops_at_a_breach():
    clock = FakeClock()
    healthy = iter([traffic(0), *(traffic(100 * i) for i in range(1, 20))])
    verdict = watch(
        "x", spec_with(window_s=10), scrape=lambda _: next(healthy), sleep=clock.sleep, clock=clock
    )
    assert verdict.passed and verdict.requests == 500 and verdict.watched_s == clock.now == 10
    clock = FakeClock()
    broken = iter([traffic(0), traffic(100, errors=50), traffic(200)])
    verdict = watch(
        "x", spec_with(window_s=10), scrape=lambda _: next(broken), sleep=clock.sleep, clock=clock
    )
    assert not verdict.passed and verdict.watched_s == clock.now == 2


def compared(scrape: Scrape, records: int) -> Scrape:
    """`scrape` with `records` compared with a shadow, all agreeing."""
    return scrape.model_copy(update={"compared": records, "agreed": records})


def test_a_breach_ends_the_watch_only_once_a_starting_shadow_compared_enough():
    """A shadow started beside the watch: its comparison belongs in the verdict, so a breach
    ends the watch once the shadow compared `min_requests` records, or had one interval to."""
    clock = FakeClock()
    broken = iter([traffic(0), *(traffic(100 * i, errors=50 * i) for i in range(1, 10))])
    ready_at = 3.0
    verdict = watch(
        "x",
        spec_with(window_s=10),
        scrape=lambda _: next(broken),
        sleep=clock.sleep,
        clock=clock,
        settled=lambda: clock.now >= ready_at,
    )  # seen settled at 4, still nothing compared: one interval more
    assert not verdict.passed and verdict.watched_s == clock.now == 6
    clock = FakeClock()
    busy = iter(
        [traffic(0), *(compared(traffic(100 * i, errors=50 * i), 30 * i) for i in range(1, 10))]
    )
    verdict = watch(
        "x",
        spec_with(window_s=10, min_requests=20),
        scrape=lambda _: next(busy),
        sleep=clock.sleep,
        clock=clock,
        settled=lambda: clock.now >= ready_at,
    )  # at 4 it has compared 60 records: enough
    assert not verdict.passed and verdict.watched_s == clock.now == 4 and verdict.compared >= 20
    clock = FakeClock()
    broken = iter([traffic(0), *(traffic(100 * i, errors=50 * i) for i in range(1, 10))])
    never = watch(
        "x", spec_with(window_s=5), scrape=lambda _: next(broken), sleep=clock.sleep,
        clock=clock, settled=lambda: False,
    )  # fmt: skip
    assert not never.passed and never.watched_s == 5  # the window still ends it


def test_watch_disabled_and_unreadable_metrics():
    assert "disabled" in watch("x", spec_with(window_s=0), scrape=None).notes[0]

    def unreachable(url):
        raise httpx.ConnectError("refused")

    verdict = watch("x", spec_with(window_s=5), scrape=unreachable, sleep=lambda s: None)
    assert not verdict.passed and "unreadable" in verdict.reasons[0]


def test_a_failed_bake_rolls_alias_and_service_back_and_records_why(tmp_path: Path):
    registry, production = BundleRegistry(tmp_path), FakeProduction()
    promote(FakeBundle("credit", "sha256:a"), registry, production, actor="ann", reason="r1")
    promotion = promote(
        FakeBundle("credit", "sha256:b"), registry, production, actor="bob", reason="r2"
    )
    failing = BakeVerdict(passed=False, requests=50, reasons=["p95 9 ms > 1 ms"])
    result = bake(promotion, spec_with(), registry, production, watcher=lambda u, s: failing)
    assert result.rolled_back_to == "sha256:a"
    assert registry.get_alias("credit", "production") == "sha256:a"
    assert [i.digest for i in production.switched] == ["sha256:a", "sha256:b", "sha256:a"]
    last = [m for m in registry.history("credit") if m.alias == "production"][-1]
    assert last.actor == BAKE_ACTOR and "p95 9 ms > 1 ms" in last.reason


def test_a_passed_or_superseded_bake_leaves_production_alone(tmp_path: Path):
    registry, production = LocalRegistry(tmp_path), FakeProduction()
    first = promote(FakeBundle("credit", "sha256:a"), registry, production, actor="a", reason="")
    failing = BakeVerdict(passed=False, reasons=["boom"])
    alone = bake(first, spec_with(), registry, production, watcher=lambda u, s: failing)
    assert alone.rolled_back_to is None and "no previous" in alone.verdict.notes[0]
    promote(FakeBundle("credit", "sha256:b"), registry, production, actor="b", reason="")
    superseded = bake(first, spec_with(), registry, production, watcher=lambda u, s: failing)
    assert superseded.verdict.passed and "moved on" in superseded.verdict.notes[0]
    assert registry.get_alias("credit", "production") == "sha256:b"


def test_a_release_ends_rolled_back_bake_failed_or_promoted():
    from fearless.production.bake import BakeResult
    from tasks.bake import bake_end_state, bake_markdown

    promotion = PromotionResult(model="credit", digest="sha256:b", previous_digest=None, url="u")
    failed = BakeVerdict(passed=False, requests=50, reasons=["p95 9 ms > 1 ms"])
    back = BakeResult(model="credit", digest="sha256:b", verdict=failed, rolled_back_to="sha256:a")
    stuck = back.model_copy(update={"rolled_back_to": None})
    ok = BakeResult(model="credit", digest="sha256:b", verdict=BakeVerdict(passed=True))
    rolled = bake_end_state(back, promotion)
    assert (rolled.name, rolled.message) == (
        "RolledBack",
        "rolled back to sha256:a: p95 9 ms > 1 ms",
    )
    assert bake_end_state(stuck, promotion).name == "BakeFailed"
    assert bake_end_state(ok, promotion).is_completed()
    assert "rolled back to sha256:a by `fearless-bake`" in bake_markdown(back, 60)
