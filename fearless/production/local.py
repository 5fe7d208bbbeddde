"""The production service of each model on the embedded default.

Each model has a front (`fearless.production.front`: an nginx of its own) on a port that never
changes, and two upstream slots. A switch starts the new version in the idle slot, waits until
it is ready, checks it is the model API Fearless started there for that bundle, points the
front at it, waits until the old version has no connection from the front left (up to a drain
timeout), then stops it: clients see no failed request, and a failed start never leaves the
model without a server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
from pydantic import BaseModel

from fearless.bundles.bundle import Bundle
from fearless.ids import checked_id
from fearless.platform import processes
from fearless.platform.preload import Launcher
from fearless.production.front import FrontError
from fearless.production.front_log import AccessLog, Scrape
from fearless.production.fronts import Front, Fronts, write_json

# How long requests that chose the old slot just before a switch may take to reach it.
SWITCH_GRACE_S = 0.1


class ProductionInstance(BaseModel):
    model: str
    digest: str
    url: str
    """The model's stable production address (its front)."""
    handle: processes.ProcessHandle
    upstream: str | None = None
    """This version's own model API, behind the front."""
    slot: str | None = None
    """The front's slot this version serves from."""


def _connections_to(handle: processes.ProcessHandle, port: int) -> int:
    """Connections open to `port` in the process of `handle` (0 once it is gone)."""
    try:
        found = psutil.Process(handle.pid).net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in found if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)


def _listens_on(handle: processes.ProcessHandle, port: int) -> bool:
    try:
        found = psutil.Process(handle.pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in found)


class LocalProductionService:
    def __init__(
        self,
        root: Path,
        inference_logs: Path,
        ready_timeout_s: float = 60.0,
        launcher: Launcher | None = None,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.root = root
        self.inference_logs = inference_logs
        self.ready_timeout_s = ready_timeout_s
        self.launcher = launcher or Launcher()
        self.drain_timeout_s = drain_timeout_s
        self.fronts = Fronts(root / "fronts", ready_timeout_s)

    def _record(self, model: str) -> Path:
        return self.root / f"{checked_id(model, 'model name')}.json"

    def current(self, model: str) -> ProductionInstance | None:
        try:
            return ProductionInstance.model_validate_json(self._record(model).read_text())
        except FileNotFoundError:
            return None

    def front(self, model: str) -> Front:
        """The model's front; its ports are chosen once and kept, so its URL never changes."""
        return self.fronts.get(model)

    def start(self, bundle: Bundle) -> ProductionInstance:
        """Start (but do not yet switch to) `bundle` in its front's idle slot."""
        serving = self.current(bundle.name)
        slot = "green" if serving is not None and serving.slot == "blue" else "blue"
        port = self.fronts.free_slot(bundle.name, slot)
        handle = self.launcher.start(
            "fearless.serving",
            processes.model_api_args(bundle.path, port, self.inference_logs),
            log_path=self.root / "logs" / f"{bundle.name}-{bundle.short_digest}.log",
        )
        upstream = f"http://127.0.0.1:{port}"
        try:
            processes.wait_until_ready(f"{upstream}/ready", handle, self.ready_timeout_s)
        except (RuntimeError, TimeoutError):
            processes.stop(handle)
            raise
        return ProductionInstance(
            model=bundle.name,
            digest=bundle.digest,
            url=self.front(bundle.name).url,
            handle=handle,
            upstream=upstream,
            slot=slot,
        )

    def switch(self, instance: ProductionInstance) -> ProductionInstance | None:
        """Make `instance` the model's production service; drain, stop and return the previous."""
        previous = self.current(instance.model)
        with self.fronts.locked(instance.model):
            self._verify(instance, self.front(instance.model))
            self.fronts.nginx(instance.model).point(instance.slot)
            self.fronts.running(instance.model)
        write_json(self._record(instance.model), instance)
        if previous is not None and previous.handle != instance.handle:
            self._drain(previous)
            processes.stop(previous.handle)
        return previous

    @staticmethod
    def _verify(instance: ProductionInstance, front: Front) -> None:
        """Refuse unless `instance` is a model API Fearless started in one of the front's slots
        for that bundle: a switch never points production anywhere else."""
        port = front.slots.get(instance.slot or "")
        why = None
        if port is None or instance.upstream != f"http://127.0.0.1:{port}":
            why = f"it is not in a slot of the front ({instance.slot}: {instance.upstream})"
        elif not processes.is_alive(instance.handle):
            why = "its model API is not running"
        elif not _listens_on(instance.handle, port):
            why = f"its model API does not listen on the slot's port {port}"
        else:
            try:
                served = httpx.get(f"{instance.upstream}/metadata", timeout=5).json()["digest"]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                served = repr(exc)
            if served != instance.digest:
                why = f"its model API serves {served}"
        if why:
            raise FrontError(f"not switching {instance.model} to {instance.digest}: {why}")

    def _drain(self, previous: ProductionInstance) -> None:
        """Wait until the front has no connection left to the previous version (or the timeout):
        requests that chose its slot before the switch have finished, and the idle upstream
        connections nginx keeps close within their keep-alive timeout (2 s)."""
        time.sleep(SWITCH_GRACE_S)
        port = int((previous.upstream or previous.url).rsplit(":", 1)[1])
        deadline = time.monotonic() + self.drain_timeout_s
        while _connections_to(previous.handle, port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def discard(self, instance: ProductionInstance) -> None:
        processes.stop(instance.handle)

    @contextmanager
    def bake_window(self, model: str) -> Iterator[Callable[[], Scrape] | None]:
        """Log the front's requests while a bake watches; yield what the version serving now
        answered since (as the cumulative counts a bake compares), or None with no front."""
        instance, front = self.current(model), self.front(model)
        if instance is None or instance.upstream is None or front.handle is None:
            yield None
            return
        nginx = self.fronts.nginx(model)
        upstream = instance.upstream.removeprefix("http://")
        log = AccessLog(nginx.access_log, upstream, reopen=lambda: nginx.reopen_logs(front.handle))
        nginx.log_requests(True)
        try:
            yield log.scrape
        finally:
            nginx.log_requests(False)
            log.close()

    def stop(self, model: str) -> list[str]:
        """Stop the model's API and front; the front keeps its ports for the next start."""
        stopped = []
        instance = self.current(model)
        if instance is not None:
            if processes.stop(instance.handle):
                stopped.append(model)
            self._record(model).unlink(missing_ok=True)
        if self.fronts.stop(model):
            stopped.append(f"{model} (front)")
        return stopped

    def stop_all(self) -> list[str]:
        models = {r.stem for r in self.root.glob("*.json")} | set(self.fronts.models())
        return [name for model in sorted(models) for name in self.stop(model)]
