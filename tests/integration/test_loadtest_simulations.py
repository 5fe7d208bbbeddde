"""Real Locust against real model APIs: every profile, drift scenarios, a replayed log paced by
its recorded timing, champion against challenger, and a generator pushed into saturation.

The machine these run on may be shared: nothing here asserts a latency figure; the regression
and saturation tests compare against stand-ins built to differ by far more than any noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from fearless.bundles.bundle import read_reference
from fearless.loadtest.compare import compare_to_champion
from fearless.loadtest.paired import run_paired_load_test
from fearless.loadtest.runner import run_load_test
from fearless.loadtest.traffic import read_replay, synthesize_traffic, write_replay, write_traffic
from fearless.loadtest.verdict import evaluate_load_test
from fearless.spec import LoadProfile, SLOs, load_spec
from simulations.profiles import PROFILES
from simulations.replay import ReplayClock
from simulations.scenarios import apply_scenario, load_scenarios
from tests.integration.conftest import stop_processes
from tests.integration.test_loadtest_runner import (
    _free_port,
    _start_standin,
    _wait_ready,
    unjudged,
)

# A bare asyncio HTTP server that answers every request with a canned 200 and parses nothing:
# far cheaper per request than Locust, so enough Locust users peg the generator.
CHEAP_SERVER = r"""
import asyncio, sys
BODY = b'{"predictions":[]}'
REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(BODY), BODY)
class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.transport.write(REPLY)
async def main(port):
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port)
    await server.serve_forever()
asyncio.run(main(int(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def credit_traffic(credit_project) -> list[dict]:
    spec = load_spec(credit_project / "fearless.yaml")
    return synthesize_traffic(
        read_reference(spec, credit_project / spec.reference_data), spec, 500, 0
    )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_runs_against_the_model_api(profile, model_api, credit_traffic, tmp_path):
    traffic = write_traffic(credit_traffic, tmp_path / "traffic.jsonl")
    load = LoadProfile(profile=profile, rate=40, users=4, duration_s=3)
    result = run_load_test(model_api[0], load, traffic, tmp_path / "out")

    assert result.requests > 0 and result.failures == 0, result.top_errors
    assert result.profile == profile and 2 <= result.duration_s <= 4.5
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert result.held_share >= 0.95, result  # the open model sent what the profile asks
    assert not evaluate_load_test(result, SLOs(p95_ms=10_000, p99_ms=10_000)).reasons


def test_drift_scenarios_reach_the_model_api(credit_project, model_api, credit_traffic, tmp_path):
    spec = load_spec(credit_project / "fearless.yaml")
    scenarios = load_scenarios()
    load = LoadProfile(users=2, spawn_rate=2, duration_s=2)

    missing = apply_scenario(credit_traffic, scenarios["missing-debt-ratio"], spec)
    traffic = write_traffic(missing, tmp_path / "missing.jsonl")
    result = run_load_test(model_api[0], load, traffic, tmp_path / "missing")
    # debt_ratio is not nullable: the API refuses a tenth of the records, and the gate says so.
    assert 0.05 <= result.error_rate <= 0.15
    assert any("HTTP 422" in e for e in result.top_errors)

    shifted = apply_scenario(credit_traffic, scenarios["new-purpose"], spec)
    traffic = write_traffic(shifted, tmp_path / "new.jsonl")
    result = run_load_test(model_api[0], load, traffic, tmp_path / "new")
    assert result.failures == 0  # new categories are served, and counted by the API
    unknown = httpx.get(f"{model_api[0]}/metadata").json()["unknown_categories"]
    assert unknown.get("purpose", 0) > 0


def test_a_recorded_log_is_replayed_in_order_at_its_pace(
    credit_project, model_api, credit_traffic, tmp_path
):
    # The module's API plays production first (what it logs is the log to replay), then the
    # candidate the log is replayed against; `since` tells the two phases apart.
    spec, (url, log_dir) = load_spec(credit_project / "fearless.yaml"), model_api
    sent = credit_traffic[:6]
    recorded_from = datetime.now(UTC)
    for i in range(0, 6, 2):  # three requests of two records, 0.5 s apart
        httpx.post(f"{url}/predict", json={"records": sent[i : i + 2]}).raise_for_status()
        time.sleep(0.5)
    replay = read_replay(log_dir, spec, since=recorded_from)
    assert replay.records == sent
    assert replay.offsets_s[1] == 0 and 0.4 <= replay.offsets_s[2] <= 1.5

    traffic = write_replay(replay, tmp_path / "traffic.jsonl")
    load = LoadProfile(users=1, spawn_rate=10, duration_s=3)  # one user keeps the order
    replayed_from = datetime.now(UTC)
    result = run_load_test(url, load, traffic, tmp_path / "out", replay_speed=1.0)

    # Paced: the slots the log's own rhythm makes due in 3 s (two to three passes of six
    # records, by how long the recorded requests took), not the thousands of an unpaced run.
    # Half a second of slack covers Locust starting and stopping its user.
    clock = ReplayClock(replay.offsets_s)
    due = sum(clock.next()[1] <= load.duration_s + 0.5 for _ in range(100))
    assert due < 20, replay.offsets_s
    assert result.failures == 0 and 6 <= result.requests <= due, (result.requests, due)
    assert read_replay(log_dir, spec, since=replayed_from).records[:6] == sent


@pytest.fixture(scope="module")
def champion_and_slower_challenger():
    servers = {
        "champion": _start_standin(STANDIN_DELAY_MS="5"),
        "challenger": _start_standin(STANDIN_DELAY_MS="80"),
    }
    try:
        for proc, url in servers.values():
            _wait_ready(proc, url, timeout_s=60)  # slow on a busy machine
        yield {name: url for name, (_, url) in servers.items()}
    finally:
        stop_processes(*(proc for proc, _ in servers.values()))


def test_the_same_load_shows_a_slower_challenger_regressing(
    champion_and_slower_challenger, tmp_path
):
    urls = champion_and_slower_challenger
    records = [{"age": 20 + i, "income": 1000.0 * i, "purpose": "car"} for i in range(50)]
    traffic = write_traffic(records, tmp_path / "traffic.jsonl")
    load = LoadProfile(rate=40, duration_s=3)

    paired = run_paired_load_test(urls["challenger"], urls["champion"], load, traffic, tmp_path)

    assert Path(paired.champion.report_html).parent == tmp_path / "champion"
    assert Path(paired.candidate.report_html).parent == tmp_path / "candidate"
    verdict = compare_to_champion(paired.candidate, paired.champion, margin=0.1)
    assert not verdict.passed, verdict.reasons
    # Judged, unless the machine was busy with other work during the candidate's run.
    assert not verdict.inconclusive or unjudged(verdict), verdict.reasons
    # Both held the same rate (the open model): the challenger is slower, not less busy.
    assert "p95_ms" in {c.name for c in verdict.checks if not c.ok}
    assert paired.candidate.held_share >= 0.95 and paired.champion.held_share >= 0.95
    assert compare_to_champion(paired.champion, paired.champion, margin=0.1).passed


@pytest.fixture
def cheap_server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", CHEAP_SERVER, str(port)], env=os.environ)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.post(f"{url}/predict", content=b"{}", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and proc.poll() is None, (
                "cheap server never answered"
            )
            time.sleep(0.1)
    try:
        yield url
    finally:
        stop_processes(proc)


def test_a_saturated_generator_makes_the_verdict_inconclusive(cheap_server, tmp_path):
    traffic = write_traffic([{"x": 1}], tmp_path / "traffic.jsonl")
    load = LoadProfile(mode="closed", users=256, spawn_rate=10_000, duration_s=4)
    result = run_load_test(cheap_server, load, traffic, tmp_path / "out")

    cpu, wait = result.generator_cpu_pct, result.generator_cpu_wait_pct
    print(f"\ngenerator {cpu:.0f}% running + {wait:.0f}% waiting, {result.rps:.0f} rps")
    assert result.requests > 0 and result.failures == 0
    assert result.generator_busy_pct >= 90
    # Generous SLOs the figures meet: only the generator makes this run unjudgeable.
    verdict = evaluate_load_test(result, SLOs(p95_ms=10_000, p99_ms=10_000))
    assert verdict.inconclusive and not verdict.passed
    assert verdict.reasons[0].startswith("inconclusive: the load generator was busy")
