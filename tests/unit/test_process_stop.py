"""Stopping a process kills one that ignores SIGTERM once its grace is over; one of ours killed
from outside is reaped as soon as anyone asks whether it lives; a background flow lowers the
priority of every thread it has."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fearless.platform import processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
)


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(tmp_path):
    stubborn = processes.spawn([sys.executable, "-c", IGNORES_SIGTERM], tmp_path / "s.log")
    time.sleep(1)  # let it install its handler
    assert processes.stop(stubborn, grace_s=1)
    assert not processes.is_alive(stubborn)
    assert not psutil.pid_exists(stubborn.pid)  # our own child: reaped, no zombie left
    assert not processes.stop(stubborn)  # already gone


def test_a_child_killed_from_outside_is_reaped_once_found_dead_and_its_signal_kept(tmp_path):
    # As a fault test kills the Prefect server: while its pid stayed a zombie of the test
    # process, Prefect's lease-store lock (which that server held) counted as held for good.
    child = processes.spawn(["sleep", "60"], tmp_path / "sleep.log")
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while processes.is_alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not processes.is_alive(child)
    assert not psutil.pid_exists(child.pid)  # reaped: no zombie holds the pid
    assert processes.how_it_exited(child) == "exited (signal 9)"


# Starts a thread, then lowers its own priority: each thread's niceness before and after.
BACKGROUND = """
import json, os, threading, time
from fearless.platform.processes import run_in_background
threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
before = [os.getpriority(os.PRIO_PROCESS, t) for t in tids]
run_in_background(5)
print(json.dumps([before, [os.getpriority(os.PRIO_PROCESS, t) for t in tids]]))
"""


def test_running_in_the_background_lowers_every_threads_priority():
    """A flow's threads started before it (Prefect's log and event workers) are lowered too."""
    out = subprocess.run([sys.executable, "-c", BACKGROUND], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout  # fmt: skip
    before, after = json.loads(out)
    assert len(after) == 2  # the main thread and the one started before
    assert after == [min(19, n + 5) for n in before]
