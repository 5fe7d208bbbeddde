"""The host sampler tells the test's own processes from other work, with real processes."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from fearless.loadtest.host import HostSampler, serving_processes, work_unit_us
from fearless.platform.processes import free_port

SPIN = "while True: pass"
# Listens like a model API, and burns CPU like one under load.
BUSY_LISTENER = (
    "import socket, sys\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('ready', flush=True)\n"
    "while True: pass"
)


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []

    def start(code: str, *args: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_the_api_under_test_is_the_tests_own_and_other_work_is_named(processes):
    port = free_port()
    api = processes(BUSY_LISTENER, str(port))
    assert api.stdout.readline().strip() == b"ready"
    other = processes(SPIN)
    url = f"http://127.0.0.1:{port}"
    assert api.pid in {p.pid for p in serving_processes(url)}

    sampler = HostSampler(url)
    samples = []
    for _ in range(8):
        time.sleep(0.25)
        samples.append(sampler.sample())
    host = sampler.summary(samples, generator_pct=0.0, exclude=set())
    named = " ".join(sampler.top_others({p.pid for p in sampler.ours}, limit=100))

    assert f"(pid {other.pid})" in named  # the spinning process is other work
    assert f"(pid {api.pid})" not in named  # the model API is the test's own
    assert host.others_pct > 0 and host.others_pct <= host.cpu_pct
    assert host.cores >= 1 and 0 <= host.steal_pct <= 100
    assert host.work_unit_us == round(statistics.median(s[3] for s in samples), 1) > 0
    assert f"a fixed CPU work unit {host.work_unit_us:.0f} µs" in host.describe()


def test_a_work_unit_is_timed_in_cpu_time_and_grows_with_the_work():
    """Four times the loop takes about four times the CPU, however busy the machine is (the
    time spent waiting for a core is not counted), so the unit measures the host's speed."""
    unit = statistics.median(work_unit_us(20_000) for _ in range(7))
    four = statistics.median(work_unit_us(80_000) for _ in range(7))
    assert 2.0 < four / unit < 8.0, (unit, four)


def test_a_remote_target_has_no_local_processes():
    assert serving_processes("http://192.0.2.10:8080") == []
