"""Stopping a process waits for it to exit, not for its parent to reap it, and no longer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fearless.platform import processes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A parent that starts a child in a session of its own and never reaps it, as the fronts'
# supervisor holds its nginx master: the child, once stopped, stays a zombie meanwhile.
UNREAPING_PARENT = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()
    time.sleep(120)
    os._exit(0)
open(sys.argv[1], "w").write(str(pid))
time.sleep(120)
"""
IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
)


def _wait_for_text(path, timeout_s: float = 30) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


def test_a_stopped_process_its_parent_has_not_reaped_is_not_waited_for(tmp_path):
    parent = processes.spawn([sys.executable, "-c", UNREAPING_PARENT, str(tmp_path / "pid")],
                             tmp_path / "parent.log")  # fmt: skip
    try:
        child = processes.handle_of(int(_wait_for_text(tmp_path / "pid")), str(tmp_path / "c"))
        started = time.monotonic()
        assert processes.stop(child, grace_s=60)
        took = time.monotonic() - started
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE  # still unreaped
        assert not processes.is_alive(child)
        assert took < 30, f"stop waited {took:.0f} s of its 60-s grace for a zombie"
    finally:
        processes.stop(parent, grace_s=5)


def test_a_process_that_ignores_sigterm_is_killed_after_its_grace(tmp_path):
    stubborn = processes.spawn([sys.executable, "-c", IGNORES_SIGTERM], tmp_path / "s.log")
    time.sleep(1)  # let it install its handler
    assert processes.stop(stubborn, grace_s=1)
    assert not processes.is_alive(stubborn)
    assert not psutil.pid_exists(stubborn.pid)  # our own child: reaped, no zombie left
    assert not processes.stop(stubborn)  # already gone


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
