"""The production fronts of every model on this machine, and their supervisor.

Each model's front has a record (`fronts/<model>.json`): its port and its two slots' ports,
chosen once and kept so its address never changes, and the nginx process running it, if any.
A front that dies while it should run is started again by the supervisor that
`fearless server up` starts (and `fearless server down` stops, before every front), and so is
a production model API that dies (`LocalProductionService.keep_up`, production's records being
the folder above the fronts'), forked from the preloaded parents in `--preload` if given. It
also runs each front's hold server, where nginx sends what a dead model API cannot take:

    python -m fearless.production.fronts --root DIR [--preload DIR] [--interval S]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, model_validator

from fearless.ids import checked_id
from fearless.platform import processes
from fearless.production.front import SLOTS, FrontError, NginxFront, choose_ports, port_is_free
from fearless.production.hold import HoldServer


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(model.model_dump_json(indent=2))
    os.replace(tmp, path)


class Fronts:
    def __init__(self, root: Path, start_timeout_s: float = 30.0) -> None:
        self.root = root
        self.start_timeout_s = start_timeout_s

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
    def locked(self, model: str) -> Iterator[None]:
        """One process at a time changes a model's front (a switch, a stop, the supervisor)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._record(model).with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def running(self, model: str) -> Front:
        """The front, started with its configuration if it is not running (hold `locked`)."""
        front = self.get(model)
        if front.handle is not None and processes.is_alive(front.handle):
            return front
        nginx = self.nginx(model)
        if front.handle is not None:
            nginx.stop_leftovers(front.handle)
        nginx.write_conf(front.port, front.slots, hold=front.hold)
        front = front.model_copy(update={"handle": nginx.start(front.port, self.start_timeout_s)})
        write_json(self._record(model), front)
        return front

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
            with self.locked(model):
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
    fronts = Fronts(root)
    production = LocalProductionService(
        root.parent, root.parent / "inference", launcher=Launcher(preload)
    )
    holds: dict[str, HoldServer] = {}
    while not stopping:
        _hold_each(fronts, holds)
        for model, what in fronts.keep_up().items():
            print(f"front of {model}: {what}", flush=True)
        for model, what in production.keep_up().items():
            print(f"production of {model}: {what}", flush=True)
        time.sleep(interval_s)
    for hold in holds.values():
        hold.close()


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
