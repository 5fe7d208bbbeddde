"""The preloaded parent's socket is its owner's alone, runs only the modules it preloads for,
and answers a malformed request with an error instead of crashing: it once ran any module for
anyone who could connect, and died on the first line that was not JSON."""

from __future__ import annotations

import json
import socket
import stat
import sys
import time

import pytest

from fearless.platform import processes

SOCKET = "preload-model-api.sock"


@pytest.fixture
def parent(tmp_path):
    """A preloaded parent with nothing preloaded (fast to start), as `server up` starts it."""
    handle = processes.spawn(
        [sys.executable, "-m", "fearless.platform.preload", "--socket", str(tmp_path / SOCKET)],
        tmp_path / "parent.log",
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / SOCKET).exists():
        assert processes.is_alive(handle) and time.monotonic() < deadline, processes.log_tail(
            handle
        )
        time.sleep(0.05)
    yield tmp_path, handle
    processes.stop(handle)


def ask(folder, line: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(folder / SOCKET))
        client.sendall(line)
        return json.loads(client.makefile("r").readline())


def request(folder, module: str, args: list[str]) -> bytes:
    body = {"module": module, "args": args, "log_path": str(folder / f"{module}.log")}
    return json.dumps({**body, "cwd": str(folder), "exit_path": None}).encode() + b"\n"


def test_the_socket_is_its_owners_alone(parent):
    folder, _ = parent
    assert stat.S_IMODE((folder / SOCKET).stat().st_mode) & 0o077 == 0


def test_a_module_it_does_not_preload_for_is_refused(parent):
    folder, handle = parent
    made = folder / "made.zip"

    answer = ask(folder, request(folder, "zipfile", ["-c", str(made), str(folder / SOCKET)]))

    assert "zipfile" in answer["error"] and "pid" not in answer
    time.sleep(0.5)
    assert not made.exists() and processes.is_alive(handle)


@pytest.mark.parametrize(
    "line",
    [b"not json\n", b"[]\n", b'{"module": "fearless.serving"}\n', b"\xff\xfe\n", b"x" * 100_000],
    ids=["not-json", "not-an-object", "incomplete", "not-utf8", "too-long"],
)
def test_a_malformed_request_is_answered_and_the_parent_keeps_serving(parent, line):
    folder, handle = parent

    assert "error" in ask(folder, line)

    assert processes.is_alive(handle)
    answer = ask(folder, request(folder, "fearless.serving", ["--no-such-flag"]))
    assert isinstance(answer["pid"], int)


def test_a_client_that_sends_nothing_does_not_hold_the_parent(parent):
    folder, _ = parent
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(str(folder / SOCKET))
        started = time.monotonic()
        answer = ask(folder, request(folder, "fearless.serving", ["--no-such-flag"]))
    assert isinstance(answer["pid"], int) and time.monotonic() - started < 8
