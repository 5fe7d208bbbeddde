"""The production fronts of every model on this machine, and their supervisor.

Each model's front has a record (`fronts/<model>.json`): its port and its two slots' ports,
chosen once and kept so its address never changes, and the nginx process running it, if any.
A front that dies while it should run is started again by the supervisor that
`fearless server up` starts (and `fearless server down` stops, before every front), and so is
a production model API that dies (`LocalProductionService.keep_up`, production's records being
the folder above the fronts'), forked from the preloaded parents in `--preload` if given. It
also runs each front's hold server, where nginx sends what a dead model API cannot take.

The supervisor starts every front (other processes ask it, on `supervisor.sock`) and keeps
each front's listening socket open: nginx takes it rather than binding its own, so a front
killed outright (master and workers) still takes connections, queued by the kernel until the
supervisor's next nginx accepts them. Without a supervisor a process starts nginx itself.

    python -m fearless.production.fronts --root DIR [--preload DIR] [--interval S]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, model_validator

from fearless.ids import checked_id
from fearless.platform import processes
from fearless.production.front import (
    SLOTS,
    FrontError,
    NginxFront,
    choose_ports,
    listening_socket,
    port_is_free,
)
from fearless.production.hold import HoldServer
from fearless.staging import write_atomically

SUPERVISOR_SOCKET = "supervisor.sock"
REAP_S = 0.1  # how soon the supervisor reaps a front it started that was stopped


class Front(BaseModel):
    model: str
    port: int
    slots: dict[str, int]
    """Each slot's loopback port, where Fearless starts the model API it holds."""
    handle: processes.ProcessHandle | None = None
    """The nginx master, while the front should run."""
    hold: int | None = None
    """The supervisor's hold server for this front (`fearless.production.hold`), if any."""

    @model_validator(mode="before")
    @classmethod
    def _slots_for_an_older_record(cls, data):
        if isinstance(data, dict) and "slots" not in data:
            ports = choose_ports(len(SLOTS), avoid={data.get("port")})
            data = {**data, "slots": dict(zip(SLOTS, ports, strict=True))}
        return data

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def write_json(path: Path, model: BaseModel) -> None:
    write_atomically(path, model.model_dump_json(indent=2))


class Fronts:
    def __init__(
        self,
        root: Path,
        start_timeout_s: float = 30.0,
        listeners: dict[str, socket.socket] | None = None,
    ) -> None:
        self.root = root
        self.start_timeout_s = start_timeout_s
        self.listeners = listeners
        """The supervisor's: each front's listening socket, kept open across its nginxes."""
        self._started: dict[str, processes.ProcessHandle] = {}

    def _record(self, model: str) -> Path:
        return self.root / f"{checked_id(model, 'model name')}.json"

    def nginx(self, model: str) -> NginxFront:
        return NginxFront(self.root / checked_id(model, "model name"))

    def get(self, model: str) -> Front:
        """The model's front (its ports chosen now if it has none yet)."""
        try:
            return Front.model_validate_json(self._record(model).read_text())
        except FileNotFoundError:
            port, hold, *slots = choose_ports(2 + len(SLOTS))
            slots = dict(zip(SLOTS, slots, strict=True))
            front = Front(model=model, port=port, slots=slots, hold=hold)
            write_json(self._record(model), front)
            return front

    def models(self) -> list[str]:
        return sorted(path.stem for path in self.root.glob("*.json"))

    @contextmanager
    def locked(self, model: str, wait: bool = True) -> Iterator[bool]:
        """One process at a time changes a model's front (a switch, a stop, the supervisor);
        with `wait` off, yields False at once if another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._record(model).with_suffix(".lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    def running(self, model: str) -> Front:
        """The front, started with its configuration if it is not running (hold `locked`)."""
        front = self.get(model)
        if front.handle is not None and processes.is_alive(front.handle):
            return front
        nginx = self.nginx(model)
        if front.handle is not None:
            nginx.stop_leftovers(front.handle)
        nginx.write_conf(front.port, front.slots, hold=front.hold)
        front = front.model_copy(update={"handle": self._start(model, front)})
        write_json(self._record(model), front)
        return front

    def _start(self, model: str, front: Front) -> processes.ProcessHandle:
        """Its nginx, started by the supervisor: here if this is it, else asked of it."""
        nginx = self.nginx(model)
        if self.listeners is None:
            asked = ask_supervisor(self.root, model, self.start_timeout_s)
            return asked or nginx.start(front.port, self.start_timeout_s)
        if previous := self._started.pop(model, None):
            processes.exit_code_of(previous)  # reap it: it was this process's child
        if model not in self.listeners:
            self.listeners[model] = listening_socket(front.port)
        handle = nginx.start(front.port, self.start_timeout_s, self.listeners[model])
        self._started[model] = handle
        return handle

    def start_asked(self, model: str) -> processes.ProcessHandle:
        """The supervisor's answer to `ask_supervisor`: the asker holds the front's lock and
        wrote its configuration."""
        return self._start(model, self.get(model))

    def reap_exited(self) -> None:
        """Reap the nginx masters this supervisor started that have ended. Until then each is
        a zombie, which a `processes.stop` elsewhere (a front stopped) waits out to the end."""
        for model, handle in list(self._started.items()):
            if not processes.is_alive(handle):
                processes.exit_code_of(self._started.pop(model))

    def close_unwanted(self) -> None:
        """Close the listening socket of each front stopped for good (or forgotten)."""
        for model in list(self.listeners or {}):
            record = self._record(model)
            if record.is_file() and self.get(model).handle is not None:
                continue
            with self.locked(model, wait=False) as mine:
                if mine and (not record.is_file() or self.get(model).handle is None):
                    self.listeners.pop(model).close()

    def free_slot(self, model: str, slot: str) -> int:
        """The slot's port, moved to a free one if another process took it while the slot was
        idle (the configuration rewritten and the running front reloaded: rare)."""
        with self.locked(model):
            front = self.get(model)
            if port_is_free(front.slots[slot]):
                return front.slots[slot]
            [port] = choose_ports(1, avoid={front.port, front.hold, *front.slots.values()})
            front = front.model_copy(update={"slots": {**front.slots, slot: port}})
            nginx = self.nginx(model)
            nginx.write_conf(front.port, front.slots, hold=front.hold)
            if front.handle is not None and processes.is_alive(front.handle):
                nginx.reload(front.handle)
            write_json(self._record(model), front)
            return front.slots[slot]

    def stop(self, model: str) -> bool:
        """Stop the model's front (it keeps its ports); True if it was running."""
        if not self._record(model).is_file():
            return False
        with self.locked(model):
            front = self.get(model)
            stopped = front.handle is not None and processes.stop(front.handle)
            if front.handle is not None:
                self.nginx(model).stop_leftovers(front.handle)
            write_json(self._record(model), front.model_copy(update={"handle": None}))
            self.nginx(model).log_requests(False)
        return stopped

    def keep_up(self) -> dict[str, str]:
        """Start again every front that died while it should run: what happened, by model."""
        done = {}
        for model in self.models():
            with self.locked(model, wait=False) as mine:
                if not mine:
                    continue  # being changed (a switch asking for its start): next round
                front = self.get(model)
                if front.handle is None or processes.is_alive(front.handle):
                    continue
                try:
                    self.running(model)
                    done[model] = "restarted"
                except FrontError as exc:
                    done[model] = f"could not restart: {exc}"
        return done


def supervise(root: Path, interval_s: float, preload: Path | None = None) -> None:
    from fearless.platform.preload import Launcher
    from fearless.production.local import LocalProductionService

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    fronts = Fronts(root, listeners={})
    production = LocalProductionService(
        root.parent, root.parent / "inference", launcher=Launcher(preload)
    )
    holds: dict[str, HoldServer] = {}
    asks = _listen_for_asks(root / SUPERVISOR_SOCKET)
    try:
        while not stopping:
            _hold_each(fronts, holds)
            for model, what in fronts.keep_up().items():
                print(f"front of {model}: {what}", flush=True)
            for model, what in production.keep_up().items():
                print(f"production of {model}: {what}", flush=True)
            fronts.close_unwanted()
            _answer_asks(fronts, asks, time.monotonic() + interval_s)
    finally:
        (root / SUPERVISOR_SOCKET).unlink(missing_ok=True)
        asks.close()
        for hold in holds.values():
            hold.close()


def _listen_for_asks(path: Path) -> socket.socket:
    """The socket other processes ask on; unbound where it cannot be (a path over the 107
    bytes a Unix socket takes): then nobody asks, and each starts its nginx itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)  # born 0600: only the state dir's owner may ask
    try:
        server.bind(str(path))
        server.listen(16)
    except OSError as exc:
        print(f"fronts are started by whoever needs one: no {path}: {exc}", flush=True)
    finally:
        os.umask(umask)
    return server


def _answer_asks(fronts: Fronts, asks: socket.socket, until: float) -> None:
    """Start the fronts other processes ask for, until `until` (the supervisor's next round)."""
    while (left := until - time.monotonic()) > 0:
        fronts.reap_exited()
        listening = asks.getsockname() != ""
        if not select.select([asks] if listening else [], [], [], min(left, REAP_S))[0]:
            continue
        conn, _ = asks.accept()
        with conn:
            conn.settimeout(2.0)
            try:
                model = json.loads(conn.makefile("r").readline())["start"]
                answer = {"handle": fronts.start_asked(model).model_dump()}
            except (OSError, ValueError, KeyError, TypeError, FrontError) as exc:
                answer = {"error": str(exc) or type(exc).__name__}
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass  # the asker is gone: its lock is free, keep_up starts the front


def ask_supervisor(root: Path, model: str, timeout_s: float) -> processes.ProcessHandle | None:
    """The front's nginx, started by the supervisor; None where no supervisor listens."""
    path = root / SUPERVISOR_SOCKET
    if not path.exists():
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s + 5)
        try:
            conn.connect(str(path))
        except OSError:
            return None  # a socket left by a supervisor that died
        try:
            conn.sendall(json.dumps({"start": model}).encode() + b"\n")
            answer = json.loads(conn.makefile("r").readline())
        except (OSError, ValueError) as exc:
            raise FrontError(
                f"the fronts' supervisor did not start {model}'s front: {exc}"
            ) from exc
    if "error" in answer:
        raise FrontError(answer["error"])
    return processes.ProcessHandle(**answer["handle"])


def _hold_each(fronts: Fronts, holds: dict[str, HoldServer]) -> None:
    """Run a hold server for each front that has a hold port and none yet."""
    for model in fronts.models():
        front = fronts.get(model)
        if front.hold is None or model in holds:
            continue
        try:
            holds[model] = HoldServer(
                front.hold, lambda slot, m=model: fronts.get(m).slots.get(slot)
            )
        except OSError as exc:
            print(f"hold server of {model} not started: {exc}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fearless.production.fronts")
    parser.add_argument("--root", type=Path, required=True, help="the fronts' records folder")
    parser.add_argument("--preload", type=Path, help="the preloaded parents' sockets folder")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between checks")
    args = parser.parse_args(argv)
    supervise(args.root, args.interval, args.preload)


if __name__ == "__main__":
    main()
