"""The bake window's figures from the front's access log: what counts, the latency buckets, a
log rotated mid-window, and a bake that reads them through the production service."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from fearless.production import front_log
from fearless.production.bake import (
    Scrape,
    WindowReader,
    _since,
    bake,
    evaluate_bake,
    quantile_s,
)
from fearless.production.front_log import AccessLog
from fearless.production.promotion import promote
from tests.unit.test_bake import spec_with
from tests.unit.test_promotion import BundleRegistry, FakeBundle, FakeProduction

UP = "127.0.0.1:20001"


def line(status=200, seconds=0.004, upstream=UP, uri="/predict") -> str:
    entry = {"t": 1.0, "method": "POST", "uri": uri, "status": status, "request_time": seconds}
    return json.dumps({**entry, "upstream": upstream, "slot": "blue"}) + "\n"


def append(path: Path, *lines: str) -> None:
    with path.open("a") as log:
        log.write("".join(lines))


def test_only_the_upstreams_predictions_count_and_5xx_are_errors(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(path, UP, reopen=lambda: None)
    assert log.scrape() == Scrape()  # no log yet: nothing served
    append(
        path,
        line(),
        line(status=502),  # the front's own error counts too
        line(status=422),  # a client's bad input does not
        line(uri="/v2/models/credit/infer"),
        line(uri="/ready"),
        line(upstream="127.0.0.1:20002"),
        line(upstream=f"127.0.0.1:20002, {UP}"),  # retried: the last one answered
        "not json\n",
        line()[:20],  # torn: counted once complete
    )
    seen = log.scrape()
    assert (seen.requests, seen.server_errors) == (5, 1)
    append(path, line()[20:])
    assert log.scrape().requests == 6


def test_buckets_are_the_milliseconds_nginx_tells_apart(tmp_path):
    path = tmp_path / "access.log"
    log = AccessLog(path, UP, reopen=lambda: None)
    append(path, *[line(seconds=0.003)] * 90, *[line(seconds=0.012)] * 10)
    seen = log.scrape()
    assert seen.buckets == [(0.003, 0), (0.004, 90), (0.012, 90), (0.013, 100)]
    assert quantile_s(0.5, seen.buckets) == pytest.approx(0.003 + 0.001 * 50 / 90)
    assert quantile_s(0.95, seen.buckets) == pytest.approx(0.0125)
    verdict = evaluate_bake(Scrape(), seen, spec_with(min_requests=10, p95_ms=10))
    assert not verdict.passed and verdict.reasons == ["p95 12.500 ms > 10 ms"]


def test_counts_between_scrapes_whose_buckets_differ():
    before = Scrape(requests=10, buckets=[(0.003, 0), (0.004, 10)])
    after = Scrape(requests=20, buckets=[(0.003, 0), (0.004, 10), (0.009, 10), (0.010, 20)])
    assert _since(before, after).buckets == [(0.003, 0), (0.004, 0), (0.009, 0), (0.010, 10)]


def test_a_big_log_is_rotated_and_read_to_its_end(tmp_path, monkeypatch):
    monkeypatch.setattr(front_log, "ROTATE_BYTES", 1000)
    monkeypatch.setattr(front_log, "REOPEN_GRACE_S", 0)
    path = tmp_path / "access.log"
    reopened = []
    log = AccessLog(path, UP, reopen=lambda: reopened.append(path.touch()))
    append(path, *[line()] * 10)
    assert log.scrape().requests == 10 and len(reopened) == 1
    old = tmp_path / "access.log.old"
    append(old, line())  # a worker's last buffered lines, written after the rename
    append(path, line(), line())
    assert log.scrape().requests == 13
    assert not old.exists()
    log.close()


class LoggingProduction(FakeProduction):
    """A production service whose front logs: every scrape of its window sees more 5xx."""

    def __init__(self):
        super().__init__()
        self.windows = []

    @contextmanager
    def bake_window(self, model, shadow=None, **_release):
        self.windows.append(model)
        scrapes = iter([Scrape(), Scrape(requests=50, server_errors=10)])
        yield WindowReader(read=lambda: next(scrapes))


def test_a_bake_reads_the_fronts_log_and_rolls_back_on_its_errors(tmp_path):
    registry, production = BundleRegistry(tmp_path), LoggingProduction()
    promote(FakeBundle("credit", "sha256:a"), registry, production, actor="ann", reason="r1")
    promotion = promote(
        FakeBundle("credit", "sha256:b"), registry, production, actor="bob", reason="r2"
    )
    result = bake(promotion, spec_with(window_s=1, min_requests=10), registry, production)
    assert production.windows == ["credit"]
    assert result.verdict.reasons == ["error rate 20.00% > 1.00%"]
    assert result.rolled_back_to == "sha256:a"
