"""`python -m fearless.platform.flow_start`: a process-pool flow run, started warm.

The worker runs this instead of `python -m prefect.engine`. It asks the `flow-run` preloaded
parent (`fearless.platform.preload`, started by `fearless server up`) for a fork that runs
Prefect's engine with this process's environment, saving the ~4 s each run spent importing
Prefect and the flows. This process stays the run's process as far as the worker knows: it
passes on the signals it gets (a cancel's SIGTERM), ends with the fork's exit code, and the
fork dies with it (a killed worker or a lost host ends the run, as before). Where no parent
listens, or it refuses, this process becomes the engine itself (exec), as Prefect would run.

Standard library only: what it imports is what every run pays before it starts. So it asks the
parent itself rather than through `preload.Launcher`, which imports pydantic and psutil.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

ENGINE = "prefect.engine"
CONNECT_TIMEOUT_S = 10.0


def _socket_path() -> Path | None:
    state_dir = os.environ.get("FEARLESS_STATE_DIR")
    path = Path(state_dir) / "processes" / "preload-flow-run.sock" if state_dir else None
    return path if path is not None and path.exists() else None


def _log_path() -> str:
    """Where the run's own output goes: beside the other processes' logs, by flow run."""
    run = os.environ.get("PREFECT__FLOW_RUN_ID", "unknown")
    folder = Path(os.environ["FEARLESS_STATE_DIR"]) / "processes" / "flow-runs"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{run}.log")


def _forked(sock_path: Path, log_path: str, exit_path: str) -> int | None:
    """The pid of the engine forked for this run, or None where the parent cannot."""
    request = {
        "module": ENGINE,
        "args": sys.argv[1:],
        "log_path": log_path,
        "cwd": os.getcwd(),
        "exit_path": exit_path,
        "env": dict(os.environ),
        "env_exact": True,
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(CONNECT_TIMEOUT_S)
            client.connect(str(sock_path))
            client.sendall(json.dumps(request).encode() + b"\n")
            return int(json.loads(client.makefile("r").readline())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _exit_code(exit_path: str, wait_s: float = 2.0) -> int:
    """The fork's exit code as a shell reports it (128 + N when signal N ended it). A fork a
    signal ended cannot write it: its parent does, once it has reaped it."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            code = int(Path(exit_path).read_text())
            break
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.02)
    return 128 - code if code < 0 else code


def _pass_on(pid: int):
    def handler(signum, _frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    return handler


def main() -> None:
    sock_path = _socket_path()
    if sock_path is not None:
        log_path = _log_path()
        exit_path = str(Path(log_path).with_suffix(".exit"))
        Path(exit_path).unlink(missing_ok=True)
        pid = _forked(sock_path, log_path, exit_path)
        if pid is not None:
            try:
                engine = os.pidfd_open(pid)
            except ProcessLookupError:
                sys.exit(_exit_code(exit_path))
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, _pass_on(pid))
            select.select([engine], [], [])  # until it exits (a signal here does not end it)
            code = _exit_code(exit_path)
            Path(exit_path).unlink(missing_ok=True)
            sys.exit(code)
    os.execv(sys.executable, [sys.executable, "-m", ENGINE, *sys.argv[1:]])


if __name__ == "__main__":
    main()
