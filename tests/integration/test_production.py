"""The production front with real model API processes: switches under steady traffic lose no
request, and a bake that production cannot meet rolls alias and service back."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Self

import httpx
import pytest

from fearless.bundles.bundle import build_bundle
from fearless.log_files import log_files, read_log_file
from fearless.platform import processes
from fearless.platform.preload import PRELOADS, Launcher
from fearless.production.bake import BAKE_ACTOR, bake
from fearless.production.local import LocalProductionService
from fearless.production.promotion import promote
from fearless.registry.local import LocalRegistry
from fearless.spec import with_overrides
from tests.conftest import CREDIT_RECORD, ROOT

RECORD = CREDIT_RECORD


class Traffic:
    """Steady predictions through the front from a few threads, each on keep-alive connections."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url, self.stopping = url, threading.Event()
        self.digests: Counter[str] = Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stopping.is_set():
                try:
                    answer = client.post("/predict", json={"records": [RECORD]})
                    outcome = answer.json()["digest"] if answer.status_code == 200 else None
                    failure = None if outcome else f"{answer.status_code}: {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    outcome, failure = None, repr(exc)
                with self.lock:
                    if outcome:
                        self.digests[outcome] += 1
                    else:
                        self.failures.append(failure)

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def total(self) -> int:
        with self.lock:
            return sum(self.digests.values()) + len(self.failures)


@pytest.fixture(scope="module")
def preloaded(tmp_path_factory) -> Path:
    """A preloaded model-API parent, as `fearless server up` starts one: fast model API starts."""
    folder = tmp_path_factory.mktemp("preload")
    sock = folder / "preload-model-api.sock"
    imports = [arg for module in PRELOADS["model-api"] for arg in ("--import", module)]
    argv = [sys.executable, "-m", "fearless.platform.preload", "--socket", str(sock), *imports]
    parent = processes.spawn(argv, folder / "parent.log")
    try:
        deadline = time.monotonic() + 90
        while not sock.exists() and time.monotonic() < deadline:
            assert processes.is_alive(parent), processes.log_tail(parent)
            time.sleep(0.1)
        yield folder
    finally:
        processes.stop(parent)


@pytest.fixture
def stack(tmp_path: Path, preloaded, credit_project, credit_challenger):
    registry = LocalRegistry(tmp_path / "registry")
    champion = build_bundle(credit_project, registry)
    challenger = build_bundle(credit_challenger, registry)
    service = LocalProductionService(
        tmp_path / "production", tmp_path / "inference", 90.0, Launcher(preloaded, cwd=ROOT)
    )
    try:
        yield registry, service, champion, challenger
    finally:
        service.stop_all()


def test_switches_under_steady_traffic_lose_no_request(stack):
    registry, service, champion, challenger = stack
    first = promote(champion, registry, service, actor="ann", reason="first")
    handles = [service.current("credit").handle]
    with Traffic(first.url) as traffic:
        for bundle in (challenger, champion, challenger):
            seen = traffic.total()
            result = promote(bundle, registry, service, actor="bob", reason="switch")
            assert result.url == first.url  # the production address never changes
            handles.append(service.current("credit").handle)
            deadline = time.monotonic() + 10
            while traffic.total() < seen + 50 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert traffic.failures == [], traffic.failures[:5]
    assert set(traffic.digests) == {champion.digest, challenger.digest}, traffic.digests
    assert sum(traffic.digests.values()) > 200
    assert [processes.is_alive(h) for h in handles] == [False, False, False, True]
    answer = httpx.post(f"{first.url}/predict", json={"records": [RECORD]})
    assert answer.json()["digest"] == challenger.digest


def test_a_bake_production_cannot_meet_rolls_back_on_latency_and_prediction_drift(stack):
    """The front's log times production, and a mirror of the same requests to the previous
    version tells how far the predictions moved: both are reasons to roll back."""
    registry, service, champion, challenger = stack
    promote(champion, registry, service, actor="ann", reason="first")
    promotion = promote(challenger, registry, service, actor="bob", reason="second")
    live_pid = service.current("credit").handle.pid
    impossible = {"window_s": 30, "p95_ms": 0.001, "min_requests": 20}
    spec = with_overrides(
        challenger.spec, {"bake": {**impossible, "max_prediction_shift": 1e-6}}, "test"
    )
    with Traffic(promotion.url) as traffic:
        result = bake(promotion, spec, registry, service)
    verdict = result.verdict
    assert not verdict.passed and verdict.requests >= 20 and verdict.compared >= 20, verdict
    assert verdict.prediction_shift > 1e-6 and verdict.agreement is not None
    latency, drift = verdict.reasons
    assert latency.startswith("p95") and latency.endswith("> 0.001 ms")
    assert drift.startswith("prediction drift from the previous version: mean score shift")
    assert result.rolled_back_to == champion.digest
    assert verdict.watched_s < 30  # stopped at the first breach, not the window's end
    assert traffic.failures == [], traffic.failures[:5]
    assert registry.get_alias("credit", "production") == champion.digest
    assert registry.get_alias("credit", "previous") == challenger.digest
    assert service.current("credit").digest == champion.digest
    answer = httpx.post(f"{promotion.url}/predict", json={"records": [RECORD]})
    assert answer.json()["digest"] == champion.digest
    move = registry.history("credit")[-2]
    assert (move.alias, move.actor, move.to_digest) == ("production", BAKE_ACTOR, champion.digest)
    assert "> 0.001 ms" in move.reason and "prediction drift" in move.reason
    # The shadow is gone, its log with it, and live traffic's log holds production's rows only.
    assert not (service.root / "shadows" / "credit").exists()
    assert not (service.fronts.nginx("credit").flags / "shadow").exists()
    digests = [
        digest
        for path in log_files(service.inference_logs, "credit")
        if path.name.split(".")[0].split("-")[0] == str(live_pid)  # <pid>[-<µs>].jsonl/.parquet
        for digest in read_log_file(path, ["digest"]).column("digest").to_pylist()
    ]
    assert len(digests) >= verdict.compared and set(digests) == {challenger.digest}
