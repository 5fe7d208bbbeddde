"""Warm starts: processes forked from a preloaded parent behave like ordinary `python -m` ones."""

import sys
import time

import httpx
import psutil
import pytest

from fearless.bundles.bundle import build_bundle
from fearless.platform import processes
from fearless.platform.preload import PRELOADS, Launcher
from fearless.registry.local import LocalRegistry


def start_parent(kind: str, folder, timeout_s: float = 60, **spawn) -> processes.ProcessHandle:
    """A preloaded parent of `kind` listening in `folder`, as `fearless server up` starts it."""
    sock = folder / f"preload-{kind}.sock"
    imports = [arg for module in PRELOADS[kind] for arg in ("--import", module)]
    parent = processes.spawn(
        [sys.executable, "-m", "fearless.platform.preload", "--socket", str(sock), *imports],
        folder / f"parent-{kind}.log",
        **spawn,
    )
    deadline = time.monotonic() + timeout_s
    while not sock.exists() and time.monotonic() < deadline:
        assert processes.is_alive(parent), processes.log_tail(parent)
        time.sleep(0.1)
    return parent


@pytest.fixture(scope="module")
def preloaded(tmp_path_factory):
    """A preloaded model-API parent, as `fearless server up` starts it."""
    folder = tmp_path_factory.mktemp("preload")
    parent = start_parent("model-api", folder)
    yield folder, parent
    processes.stop(parent)


def test_a_model_api_is_forked_from_the_parent_and_serves(preloaded, credit_project, tmp_path):
    folder, parent = preloaded
    bundle = build_bundle(credit_project, LocalRegistry(tmp_path / "registry"))
    port = processes.free_port()
    handle = Launcher(folder).start(
        "fearless.serving",
        processes.model_api_args(bundle.path, port, tmp_path / "logs"),
        tmp_path / "api.log",
    )
    try:
        assert psutil.Process(handle.pid).ppid() == parent.pid  # forked, not spawned
        processes.wait_until_ready(f"http://127.0.0.1:{port}/ready", handle, 30)
        meta = httpx.get(f"http://127.0.0.1:{port}/metadata").json()
        assert meta["digest"] == bundle.digest
    finally:
        assert processes.stop(handle)
    assert not processes.is_alive(handle)
    assert processes.is_alive(parent)  # stopping a child leaves the parent serving


@pytest.mark.parametrize("warm", [True, False])
def test_exit_codes_and_output_reach_the_caller_either_way(preloaded, tmp_path, warm):
    launcher = Launcher(preloaded[0] if warm else None)
    log = tmp_path / "bad.log"
    assert launcher.run("fearless.serving", ["--no-such-flag"], log, timeout_s=60) == 2
    assert "usage" in log.read_text()


def test_a_forked_child_killed_by_a_signal_says_which(preloaded, credit_project, tmp_path):
    """The child cannot record a SIGKILL itself: its preloaded parent reaps it and does."""
    import os
    import signal

    bundle = build_bundle(credit_project, LocalRegistry(tmp_path / "registry"))
    port, exit_path = processes.free_port(), tmp_path / "api.exit"
    handle = Launcher(preloaded[0]).start(
        "fearless.serving",
        processes.model_api_args(bundle.path, port, tmp_path / "logs"),
        tmp_path / "api.log",
        exit_path=exit_path,
    )
    processes.wait_until_ready(f"http://127.0.0.1:{port}/ready", handle, 30)
    os.kill(handle.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not exit_path.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes.is_alive(handle)
    assert processes.how_it_exited(handle, exit_path) == "exited (signal 9)"
    assert processes.is_alive(preloaded[1])  # the parent goes on serving
