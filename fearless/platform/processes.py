"""Local processes Fearless starts and stops: model APIs, the Prefect server and worker.

Each is started in its own session (so it outlives the flow run that started it, which matters
while a run is suspended for approval) and recorded with its pid and start time, so that
stopping it later can never hit an unrelated process that reused the pid.

The start time that identifies a process is counted in clock ticks after boot, as the kernel
keeps it. psutil's `create_time` adds the boot time to it, and Linux derives the boot time
from the wall clock: when that clock is stepped (NTP, a resumed VM) every process's
`create_time` moves with it, and a check against the spawn-time value declared live processes
dead (the Prefect server "exited before ready" while it was serving).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
from pydantic import BaseModel


class ProcessHandle(BaseModel):
    pid: int
    create_time: float  # seconds since the epoch, for people; moves with the wall clock
    log_path: str
    start_ticks: int | None = None  # clock ticks after boot (Linux); None in older records


_children: dict[int, subprocess.Popen] = {}


def handle_of(pid: int, log_path: str) -> ProcessHandle:
    return ProcessHandle(
        pid=pid,
        create_time=psutil.Process(pid).create_time(),
        log_path=log_path,
        start_ticks=start_ticks_of(pid),
    )


def start_ticks_of(pid: int, proc_root: Path = Path("/proc")) -> int | None:
    """When the process started, in clock ticks after boot: field 22 of /proc/<pid>/stat.

    None where there is no such file (not Linux, or the process is gone).
    """
    try:
        stat = (proc_root / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    fields_after_name = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields_after_name[19])  # fields 3 onwards, so field 22 is the 20th
    except (IndexError, ValueError):
        return None


def started_when(proc: psutil.Process, handle: ProcessHandle) -> int:
    """0 if `proc` started when `handle`'s process did, 1 if later, -1 if earlier.

    Compared in ticks after boot when both are known, else (an older record, or not Linux)
    in wall-clock seconds with a hundredth of a second of slack.
    """
    ticks = start_ticks_of(proc.pid) if handle.start_ticks is not None else None
    if ticks is not None:
        return (ticks > handle.start_ticks) - (ticks < handle.start_ticks)
    delta = proc.create_time() - handle.create_time
    return 0 if abs(delta) < 0.01 else (1 if delta > 0 else -1)


def exit_code_of(handle: ProcessHandle) -> int | None:
    """The exit code of a process this one spawned (None if it was not spawned here)."""
    proc = _children.pop(handle.pid, None)
    return None if proc is None else proc.wait()


def how_it_exited(handle: ProcessHandle, exit_path: Path | None = None) -> str:
    """`exited (signal 9)`, `exited (code 1)`, or `exited` when nothing recorded how.

    Known for a process spawned here, or one whose exit status was written to `exit_path`
    (a forked child on a normal exit, its preloaded parent when it was killed); negative
    statuses are signals, as in `subprocess`.
    """
    code = None
    if handle.pid in _children:
        # wait, not poll: a killed process with threads is a zombie a moment before it can
        # be reaped, and poll would answer "still running" in that moment.
        try:
            code = _children[handle.pid].wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
    elif exit_path is not None and exit_path.is_file():
        try:
            code = int(exit_path.read_text().strip())
        except ValueError:
            code = None
    if code is None:
        return "exited"
    return f"exited (signal {-code})" if code < 0 else f"exited (code {code})"


PORT_FLOOR = 20000  # above the well-known and registered ports local services tend to use


def free_port(host: str = "127.0.0.1") -> int:
    """A port free to listen on, chosen below the kernel's ephemeral range where it can.

    A port the kernel hands out for bind(0) comes from the ephemeral range, so any outgoing
    connection (a client of the Prefect API, say) may take it between this check and the
    server's own bind, and the server then exits "address already in use". Ports below that
    range are only ever taken by an explicit bind.
    """
    low = _ephemeral_low()
    for _ in range(64 if low - PORT_FLOOR >= 1000 else 0):
        port = random.randrange(PORT_FLOOR, low)
        if port_free(port, host):
            return port
    with socket.socket() as sock:  # no room below the range: the kernel's choice
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152  # IANA's dynamic range, which BSD and macOS use


def spawn(
    argv: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd=None,
    pass_fds: tuple[int, ...] = (),
) -> ProcessHandle:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            pass_fds=pass_fds,
        )
    _children[proc.pid] = proc
    return handle_of(proc.pid, str(log_path))


BACKGROUND_NICENESS = 10  # a background flow's CPU weight: about a tenth of a load test's


def run_in_background(niceness: int = BACKGROUND_NICENESS) -> None:
    """Lower this process's CPU priority, every thread of it, by `niceness`: for work nobody
    waits on (a cleanup, the janitor) that may start while a load test measures the host.

    On Linux a thread's niceness is its own, and `os.nice` changes only the caller's: Prefect's
    engine has started its log and event threads by the time a flow runs. Three cleanups of
    rejected releases that ran during a load test made its p95 up to 1.9 times its solo run's
    (`bench/contention.py`).
    """
    tids = (
        [int(t) for t in os.listdir("/proc/self/task")] if Path("/proc/self/task").is_dir() else [0]
    )
    for tid in tids:
        try:
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
        except OSError:  # the thread ended meanwhile
            pass


def is_alive(handle: ProcessHandle) -> bool:
    """Whether the process still runs. One spawned here that has exited is reaped on the way
    (its exit code kept for `how_it_exited`): until then its pid stays taken, and anything that
    asks whether that pid lives is told yes. Prefect's file lock asks exactly that of the
    server holding it, so a server killed mid-lease and left a zombie of a long-lived parent
    held the lease store's lock for good: every slot asked for after it took a unit, then hung
    on that lock until the client timed out."""
    try:
        proc = psutil.Process(handle.pid)
        if started_when(proc, handle) != 0:
            return False
        if proc.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:
        return False
    if (child := _children.get(handle.pid)) is not None:
        child.poll()
    return False


def stop(handle: ProcessHandle, grace_s: float = 10.0) -> bool:
    """Stop the process and its session's children; True if it was running."""
    if not is_alive(handle):
        return False
    proc = psutil.Process(handle.pid)
    family = [proc, *proc.children(recursive=True)]
    try:
        os.killpg(handle.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        for p in family:
            _signal(p, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=grace_s)
    for p in alive:
        _signal(p, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)
    return True


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.NoSuchProcess:
        pass


def log_tail(handle: ProcessHandle, lines: int = 20) -> str:
    try:
        return "\n".join(Path(handle.log_path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until_ready(url: str, handle: ProcessHandle, timeout_s: float) -> None:
    """Poll `url` until it answers 200; fail early, with the log, if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(handle):
            raise RuntimeError(
                f"process {handle.pid} exited before {url} was ready:\n{log_tail(handle)}"
            )
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s:.0f} s:\n{log_tail(handle)}")


def model_api_args(bundle_path: Path, port: int, log_dir: Path) -> list[str]:
    """Arguments of `python -m fearless.serving` for one bundle on one port."""
    return [
        "--bundle",
        str(bundle_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-dir",
        str(log_dir),
    ]
