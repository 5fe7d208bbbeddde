"""Warm starts: a parent that has already imported the heavy libraries forks each new process.

A model API spends ~5-8 s of its start importing scikit-learn, pandas and FastAPI, and the drift
engine ~10 s importing Evidently. On the embedded default `fearless server up` starts one
preloaded parent per kind; a process asked of it is forked ready-made in a fraction of a
second, in a session of its own, and runs its module as `python -m` would. Where no parent is
listening, `Launcher` starts processes the ordinary way. The socket is its owner's alone (0600),
and a parent runs only the modules of KIND_OF_MODULE: anything else is answered with an error.

    python -m fearless.platform.preload --socket PATH --import MODULE [--import MODULE ...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from fearless.platform import processes

PRELOADS = {
    "model-api": [
        "fearless.serving.app",
        "fearless.serving.__main__",
        "uvicorn",
        "pandas",
        "sklearn.pipeline",
        "sklearn.compose",
        "sklearn.preprocessing",
        "sklearn.linear_model",
        "sklearn.ensemble",
        "joblib",
    ],
    "drift": ["fearless.drift.engine", "fearless.drift.__main__", "evidently", "pyarrow.parquet"],
    # Flow runs of the process pool (`fearless.platform.flow_start`): Prefect's engine and the
    # flows with everything their tasks import, ~4 s of every run's start otherwise.
    "flow-run": [
        "prefect.engine",
        "prefect.flow_engine",
        "flows.release",
        "flows.release_pipeline",
        "flows.release_cleanup",
        "flows.janitor",
    ],
}
KIND_OF_MODULE = {
    "fearless.serving": "model-api",
    "fearless.drift": "drift",
    "prefect.engine": "flow-run",
}
MAX_REQUEST_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 2.0


class ForkRequest(BaseModel):
    """One line a client sends: which of the preloaded modules to run, and how."""

    model_config = ConfigDict(extra="forbid")
    module: str
    args: list[str]
    log_path: str
    cwd: str
    exit_path: str | None = None
    env: dict[str, str] | None = None
    env_exact: bool = False
    """The child's environment is `env` alone (a flow run's, from its worker), not added to
    the parent's."""

    @field_validator("module")
    @classmethod
    def _preloaded(cls, module: str) -> str:
        if module not in KIND_OF_MODULE:
            raise ValueError(
                f"{module!r} is not a module this parent runs ({list(KIND_OF_MODULE)})"
            )
        return module


def read_request(conn: socket.socket) -> dict:
    """The request on `conn` from a process of this user, checked; ValueError saying why not
    (OSError when the client is gone or sends nothing in time)."""
    uid, pid = _peer(conn)
    if uid not in (os.getuid(), 0):
        raise ValueError(f"a process of uid {uid} may not ask for processes")
    line = conn.makefile("rb").readline(MAX_REQUEST_BYTES + 1)
    if len(line) > MAX_REQUEST_BYTES:
        raise ValueError(f"a request is one line of at most {MAX_REQUEST_BYTES} bytes")
    try:
        return {**ForkRequest.model_validate_json(line).model_dump(), "peer_pid": pid}
    except ValidationError as exc:
        raise ValueError(f"not a request: {exc.errors(include_url=False)}") from None


def _peer(conn: socket.socket) -> tuple[int, int]:
    """The connecting process's uid and pid (SO_PEERCRED: pid, uid, gid)."""
    pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid, pid


def _answer(conn: socket.socket, message: dict) -> None:
    try:
        conn.sendall(json.dumps(message, default=str).encode() + b"\n")
    except OSError:
        pass  # the client is gone: nothing to tell


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _run_child(request: dict) -> None:
    """In the forked child: become the requested `python -m module` process, then exit."""
    code, flow_run = 1, KIND_OF_MODULE.get(request["module"]) == "flow-run"
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        log = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir(request["cwd"])
        if request.get("env_exact"):
            os.environ.clear()
        os.environ.update(request.get("env") or {})
        if flow_run:
            _become_flow_run(request["peer_pid"])
        sys.argv = [request["module"], *request["args"]]
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001 - report anything, then exit like a crashed process
        traceback.print_exc()
    finally:
        if request.get("exit_path"):
            Path(request["exit_path"]).write_text(str(code))
        sys.stdout.flush()
        sys.stderr.flush()
        if flow_run:
            # A flow run exits as Prefect's own process would, so the logs and events Prefect
            # still holds are sent at its exit (os._exit skips that: a suspended run's last
            # lines were lost). It imported nothing the parent had not: nothing else runs.
            sys.exit(code)
        os._exit(code)


def _become_flow_run(launcher_pid: int) -> None:
    """Prefect read its settings when the parent imported it: read them again from the run's
    environment. And die with the launcher the worker started and watches (its pid is the
    run's), as the run's own process would: a worker that kills it, or a host lost, ends it."""
    import threading

    import prefect.context

    prefect.context.GLOBAL_SETTINGS_CONTEXT = prefect.context.root_settings_context()
    launcher = os.pidfd_open(launcher_pid)

    def die_with_launcher() -> None:
        import select

        select.select([launcher], [], [])
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=die_with_launcher, daemon=True, name="launcher-watch").start()


_exit_paths: dict[int, str | None] = {}


def _reap(_signum=None, _frame=None) -> None:
    """Reap forked children and write how each ended to its exit path: a child writes its own
    exit code, but one killed by a signal cannot, and its owner wants to say which signal."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        path = _exit_paths.pop(pid, None)
        if path and os.WIFSIGNALED(status):
            Path(path).write_text(str(-os.WTERMSIG(status)))


def serve(socket_path: Path, modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, _reap)
    socket_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # the socket is born 0600: only its owner may connect
    try:
        server.bind(str(socket_path))
    finally:
        os.umask(umask)
    server.listen(16)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(REQUEST_TIMEOUT_S)
            try:
                request = read_request(conn)
            except (OSError, ValueError) as exc:
                _answer(conn, {"error": str(exc) or type(exc).__name__})
                continue
            # Until the child is recorded, a reaper must not see it end.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
            if pid == 0:
                server.close()
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                _run_child(request)
            _exit_paths[pid] = request.get("exit_path")
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            _answer(conn, {"pid": pid})


class Launcher:
    """Starts `python -m module` processes, forked from a preloaded parent when one listens."""

    def __init__(self, sockets_dir: Path | None = None, cwd: Path | None = None) -> None:
        self.sockets_dir = sockets_dir
        self.cwd = cwd or Path.cwd()

    def _socket(self, module: str) -> Path | None:
        kind = KIND_OF_MODULE.get(module)
        if self.sockets_dir is None or kind is None:
            return None
        path = self.sockets_dir / f"preload-{kind}.sock"
        return path if path.exists() else None

    def _fork_from(self, sock_path: Path, request: dict) -> processes.ProcessHandle | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(10)
                client.connect(str(sock_path))
                client.sendall(json.dumps(request).encode() + b"\n")
                pid = json.loads(client.makefile("r").readline())["pid"]
        except (OSError, ValueError, KeyError):
            return None  # the parent is gone or broken: start the ordinary way
        return processes.handle_of(pid, request["log_path"])

    def start(
        self, module: str, args: list[str], log_path: Path, exit_path: Path | None = None
    ) -> processes.ProcessHandle:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sock_path = self._socket(module)
        if sock_path is not None:
            request = {
                "module": module,
                "args": args,
                "log_path": str(log_path),
                "cwd": str(self.cwd),
                "exit_path": str(exit_path) if exit_path else None,
            }
            handle = self._fork_from(sock_path, request)
            if handle is not None:
                return handle
        return processes.spawn([sys.executable, "-m", module, *args], log_path, cwd=self.cwd)

    def run(self, module: str, args: list[str], log_path: Path, timeout_s: float) -> int:
        """Run a module to completion; its exit code (a timeout stops it and raises)."""
        exit_path = log_path.with_suffix(".exit")
        exit_path.unlink(missing_ok=True)
        handle = self.start(module, args, log_path, exit_path)
        deadline = time.monotonic() + timeout_s
        while processes.is_alive(handle):
            if time.monotonic() > deadline:
                processes.stop(handle)
                raise subprocess.TimeoutExpired(module, timeout_s)
            time.sleep(0.05)
        code = processes.exit_code_of(handle)
        if code is None:  # forked by a preloaded parent: the child wrote its exit code
            code = int(exit_path.read_text()) if exit_path.is_file() else 1
        return code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fearless.platform.preload")
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--import", dest="modules", action="append", default=[])
    args = parser.parse_args(argv)
    serve(args.socket, args.modules)


if __name__ == "__main__":
    main()
