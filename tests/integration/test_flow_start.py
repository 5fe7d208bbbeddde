"""Process-pool flow runs started warm (`fearless.platform.flow_start`): Prefect's engine is
forked from the preloaded `flow-run` parent with the run's environment; the launcher the worker
started stays the run's process: its exit code is the engine's, and the engine dies with it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from fearless.platform import processes
from tests.conftest import ROOT
from tests.integration.test_preload import start_parent


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    """A state dir with a preloaded flow-run parent listening, as `fearless server up` has."""
    state = tmp_path_factory.mktemp("state")
    (state / "processes").mkdir()
    parent = start_parent("flow-run", state / "processes", timeout_s=120, cwd=ROOT)
    yield state, parent
    processes.stop(parent)


def launch(state, flow_run_id: str, api_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "FEARLESS_STATE_DIR": str(state),
        "PREFECT__FLOW_RUN_ID": flow_run_id,
        "PREFECT_API_URL": api_url,
        "PREFECT_CLIENT_MAX_RETRIES": "0",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fearless.platform.flow_start"], env=env, cwd=ROOT
    )


def engines_of(parent: processes.ProcessHandle) -> list[psutil.Process]:
    return psutil.Process(parent.pid).children()


def test_the_engine_is_forked_with_the_runs_environment_and_its_exit_code_is_the_runs(state_dir):
    state, _ = state_dir
    run_id = str(uuid.uuid4())
    launcher = launch(state, run_id, "http://127.0.0.1:9/api")  # nothing listens there
    assert launcher.wait(timeout=120) == 1  # the engine cannot read its run: exit 1
    log = (state / "processes" / "flow-runs" / f"{run_id}.log").read_text()  # forked: its log
    assert "Connection refused" in log, log[-2000:]


def test_the_engine_dies_with_the_launcher_and_gets_its_signals(state_dir):
    state, parent = state_dir
    with socket.socket() as server:  # takes connections, never answers: the engine waits
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/api"
        for ending in (signal.SIGKILL, signal.SIGTERM):
            before = {p.pid for p in engines_of(parent)}
            launcher = launch(state, str(uuid.uuid4()), url)
            deadline = time.monotonic() + 60
            while not (new := [p for p in engines_of(parent) if p.pid not in before]):
                assert time.monotonic() < deadline and launcher.poll() is None
                time.sleep(0.05)
            [engine] = new
            server.settimeout(60)
            server.accept()[0].close()  # it asks the run's API URL, not the parent's
            launcher.send_signal(ending)
            launcher.wait(timeout=30)
            engine.wait(timeout=30)  # psutil: TimeoutExpired if it outlives the launcher
            if ending == signal.SIGTERM:
                assert launcher.returncode != 0
