"""Sizing Locust by its cost per request: the arithmetic, the cap and its note, the cost cache
(key, time-to-live, a corrupt file) and the plan, with a fake calibration (no Locust here)."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from fearless.loadtest import sizing, stub_api
from fearless.loadtest.runner import LoadTestError, LoadTestResult
from fearless.loadtest.sizing import (
    Calibration,
    SizedLocust,
    cached_cost,
    cost_key,
    cost_of,
    processes_for,
)
from fearless.spec import LoadProfile

TRAFFIC = Path("traffic.jsonl")  # never read: the calibration is faked


# --- processes_for -------------------------------------------------------------------------


def test_a_rate_one_process_bears_keeps_one():
    sized = processes_for(1000, 200e-6, cores=8, headroom=0.6)
    assert (sized.processes, sized.needed, sized.note) == (1, 1, None)
    assert sized.core_pct_each == pytest.approx(20.0)


def test_exactly_at_the_headroom_is_one_process_and_just_over_is_two():
    # 3500 * 200e-6 / 0.7 is 1.0000000000000002 in floating point: still one process
    assert processes_for(3500, 200e-6, cores=8, headroom=0.7).processes == 1
    assert processes_for(3000, 200e-6, cores=8, headroom=0.6).processes == 1
    over = processes_for(3501, 200e-6, cores=8, headroom=0.7)
    assert over.processes == 2 and over.core_pct_each == pytest.approx(35.0, abs=0.1)


def test_the_processes_share_the_rate_each_under_the_headroom():
    sized = processes_for(10_000, 200e-6, cores=8, headroom=0.6)  # 2 cores of Locust
    assert sized.processes == 4 and sized.note is None
    assert sized.core_pct_each == pytest.approx(50.0)


def test_the_cores_cap_the_processes_and_a_note_says_so():
    sized = processes_for(10_000, 200e-6, cores=2, headroom=0.6)
    assert (sized.processes, sized.needed) == (2, 4)
    assert sized.core_pct_each == pytest.approx(100.0)
    assert "needs 4 processes" in sized.note and "only 2 cores" in sized.note
    assert "cannot send it" in sized.note


def test_a_capped_rate_the_cores_can_still_send_is_noted_as_risky():
    sized = processes_for(4000, 200e-6, cores=1, headroom=0.6)  # 80% of the only core
    assert (sized.processes, sized.needed) == (1, 2)
    assert "may set the pace" in sized.note and "cannot send" not in sized.note


@pytest.mark.parametrize(
    ("rate", "cost", "cores", "headroom"),
    [
        (0, 1e-4, 2, 0.6),
        (100, 0, 2, 0.6),
        (100, 1e-4, 0, 0.6),
        (100, 1e-4, 2, 0),
        (100, 1e-4, 2, 1.5),
    ],
)
def test_nonsense_inputs_are_refused(rate, cost, cores, headroom):
    with pytest.raises(ValueError, match="no sizing"):
        processes_for(rate, cost, cores, headroom)


# --- cost_of -------------------------------------------------------------------------------


def _result(**figures) -> LoadTestResult:
    counts = {"requests": 20_000, "failures": 0, "rps": 2000, "error_rate": 0, "users": 1000}
    latency = {"p50_ms": 1, "p95_ms": 2, "p99_ms": 3, "duration_s": 10, "wall_s": 13}
    cpu = {"generator_cpu_pct": 50, "generator_cpu_max_pct": 60, "generator_cores": 1}
    files = {"report_html": "", "csv_prefix": "", "json_path": "", "log_path": ""}
    base = {"profile": "steady", **counts, **latency, **cpu, **files}
    return LoadTestResult(**{**base, **figures})


def test_the_cost_is_the_generators_cpu_seconds_per_request():
    assert cost_of(_result()) == pytest.approx(0.5 * 10 / 20_000)  # 250 µs
    # generator_cpu_pct is in % of all the generator's cores
    assert cost_of(_result(generator_cores=2)) == pytest.approx(2 * 0.5 * 10 / 20_000)


def test_no_requests_is_no_cost():
    with pytest.raises(LoadTestError, match="no requests"):
        cost_of(_result(requests=0))


# --- the cache -----------------------------------------------------------------------------


class FakeCalibration:
    """Records each measurement asked for; each costs `cost` s per request."""

    def __init__(self, cost: float = 200e-6) -> None:
        self.cost, self.calls = cost, []

    def __call__(self, traffic_path: Path, batch_size: int) -> Calibration:
        self.calls.append(batch_size)
        return Calibration(
            key=cost_key(batch_size), cost_per_request_s=self.cost, measured_at=self.at,
            requests=12_000, rps=2000, generator_cpu_pct=40, generator_busy_pct=45,
        )  # fmt: skip

    at = 1_000_000.0


def test_the_key_names_what_changes_the_cost():
    key = cost_key(4)
    assert "batch=4" in key and f"python=CPython-{platform.python_version()}" in key
    assert "locust=2." in key and "gevent=" in key and "cpu=" in key
    assert cost_key(1) != key


def test_the_key_changes_with_the_locustfile(tmp_path, monkeypatch):
    before = cost_key(1)
    edited = tmp_path / "locustfile.py"
    edited.write_bytes(sizing.LOCUSTFILE.read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(sizing, "LOCUSTFILE", edited)
    assert cost_key(1) != before


def test_a_cached_cost_is_measured_once_then_read(tmp_path):
    measure = FakeCalibration()
    first = cached_cost(tmp_path, TRAFFIC, 1, measure=measure, now=lambda: measure.at + 5)
    again = cached_cost(tmp_path, TRAFFIC, 1, measure=measure, now=lambda: measure.at + 60)
    assert measure.calls == [1] and again == first
    saved = json.loads((tmp_path / sizing.CACHE_FILE).read_text())
    assert saved[cost_key(1)]["cost_per_request_s"] == 200e-6


def test_another_batch_size_is_measured_on_its_own_and_both_are_kept(tmp_path):
    measure = FakeCalibration()
    for batch in (1, 50, 1):
        cached_cost(tmp_path, TRAFFIC, batch, measure=measure, now=lambda: measure.at)
    assert measure.calls == [1, 50]
    assert set(json.loads((tmp_path / sizing.CACHE_FILE).read_text())) == {
        cost_key(1),
        cost_key(50),
    }


def test_a_cached_cost_expires_at_its_time_to_live(tmp_path):
    measure = FakeCalibration()
    cached_cost(tmp_path, TRAFFIC, 1, ttl_s=3600, measure=measure, now=lambda: measure.at)
    cached_cost(tmp_path, TRAFFIC, 1, ttl_s=3600, measure=measure, now=lambda: measure.at + 3599)
    assert measure.calls == [1]
    cached_cost(tmp_path, TRAFFIC, 1, ttl_s=3600, measure=measure, now=lambda: measure.at + 3600)
    assert measure.calls == [1, 1]


def test_a_cost_from_the_future_is_not_trusted(tmp_path):
    """A clock set back since (or a file copied from elsewhere): measure again."""
    measure = FakeCalibration()
    cached_cost(tmp_path, TRAFFIC, 1, measure=measure, now=lambda: measure.at)
    cached_cost(tmp_path, TRAFFIC, 1, measure=measure, now=lambda: measure.at - 10)
    assert measure.calls == [1, 1]


def test_an_entry_under_another_key_is_not_used(tmp_path):
    stale = FakeCalibration(cost=1.0)(TRAFFIC, 1).model_copy(update={"key": "locust=1.0 ..."})
    (tmp_path / sizing.CACHE_FILE).write_text(json.dumps({"locust=1.0 ...": stale.model_dump()}))
    measure = FakeCalibration()
    got = cached_cost(tmp_path, TRAFFIC, 1, measure=measure, now=lambda: measure.at)
    assert measure.calls == [1] and got.cost_per_request_s == 200e-6


@pytest.mark.parametrize(
    "content",
    ["{not json", "[1, 2]", '{"k": {"cost_per_request_s": "fast"}}', '"a string"', ""],
)
def test_a_corrupt_cache_is_ignored_and_rewritten(tmp_path, content):
    (tmp_path / sizing.CACHE_FILE).write_text(content)
    measure = FakeCalibration()
    got = cached_cost(tmp_path, TRAFFIC, 1, measure=measure, now=lambda: measure.at)
    assert measure.calls == [1] and got.cost_per_request_s == 200e-6
    assert cost_key(1) in json.loads((tmp_path / sizing.CACHE_FILE).read_text())
    assert [p.name for p in tmp_path.iterdir()] == [sizing.CACHE_FILE]  # no partial file left


# --- the plan ------------------------------------------------------------------------------


@pytest.fixture
def calibrations(monkeypatch):
    """Every calibration SizedLocust asks for, faked at 200 µs per request."""
    measure = FakeCalibration()
    monkeypatch.setattr(sizing, "calibrate_cost", measure)
    return measure


def test_a_rate_one_process_bears_runs_as_today(tmp_path, calibrations):
    plan = SizedLocust(tmp_path, cores=2).plan(LoadProfile(rate=1000), TRAFFIC)
    assert plan.processes == 0 and plan.note is None  # run_load_test's single process
    assert "1 Locust process at ~20%" in plan.reason
    assert plan.calibration.cost_per_request_s == 200e-6


def test_a_rate_that_needs_two_processes_gets_them(tmp_path, calibrations):
    plan = SizedLocust(tmp_path, cores=2).plan(LoadProfile(rate=6000), TRAFFIC)
    assert plan.processes == 2 and plan.note is None
    assert "2 Locust processes at ~60%" in plan.reason


def test_a_rate_beyond_the_cores_is_capped_with_its_note(tmp_path, calibrations):
    plan = SizedLocust(tmp_path, cores=2).plan(LoadProfile(rate=20_000), TRAFFIC)
    assert plan.processes == 2 and "only 2 cores" in plan.note


def test_the_batch_size_is_calibrated(tmp_path, calibrations):
    SizedLocust(tmp_path, cores=2).plan(LoadProfile(rate=100, batch_size=20), TRAFFIC)
    assert calibrations.calls == [20]


@pytest.mark.parametrize(
    ("generator", "profile", "reason"),
    [
        (SizedLocust(Path("x")), LoadProfile(mode="closed", users=50), "closed model"),
        (SizedLocust(Path("x"), replay_speed=1.0), LoadProfile(rate=50_000), "timed replay"),
    ],
)
def test_the_closed_model_and_a_replay_keep_one_process_uncalibrated(
    generator, profile, reason, calibrations
):
    plan = generator.plan(profile, TRAFFIC)
    assert plan.processes == 0 and reason in plan.reason and calibrations.calls == []


def test_a_failed_calibration_falls_back_to_one_process_and_says_so(tmp_path, monkeypatch):
    def broken(traffic_path, batch_size):
        raise LoadTestError("locust failed (exit code 1)")

    monkeypatch.setattr(sizing, "calibrate_cost", broken)
    plan = SizedLocust(tmp_path, cores=4).plan(LoadProfile(rate=9000), TRAFFIC)
    assert plan.processes == 0 and "locust failed" in plan.note


# --- the calibration's stub API ------------------------------------------------------------


class Transport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)


def test_the_stub_answers_each_request_even_split_or_pipelined():
    protocol, transport = stub_api.StubProtocol(b"READY", b"PREDICTED"), Transport()
    protocol.connection_made(transport)
    body = b'{"records": [{"a": 1}]}'
    post = b"POST /predict HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    protocol.data_received(b"GET /ready HTTP/1.1\r\nHost: x\r\n\r\n" + post[:20])
    assert transport.sent == [b"READY"]  # the POST is not whole yet
    protocol.data_received(post[20:-3])
    assert transport.sent == [b"READY"]  # nor is its body
    protocol.data_received(post[-3:] + post + post)
    assert transport.sent == [b"READY", b"PREDICTED", b"PREDICTED", b"PREDICTED"]
    assert protocol.buffer == b""


def test_a_cache_that_cannot_be_written_still_gives_the_cost(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cache folder should be
    measure = FakeCalibration()
    got = cached_cost(blocked / "cache", TRAFFIC, 1, measure=measure, now=lambda: measure.at)
    assert got.cost_per_request_s == 200e-6 and measure.calls == [1]


def test_one_core_for_the_generator_runs_one_process_without_calibrating(tmp_path, calibrations):
    plan = SizedLocust(tmp_path, cores=1).plan(LoadProfile(rate=20_000), TRAFFIC)
    assert plan.processes == 0 and "one core" in plan.reason and calibrations.calls == []
