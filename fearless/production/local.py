"""The production service of each model on the embedded default.

Each model has a front (`fearless.production.front`) on a port of its own that never changes,
forwarding to the model API of the version in production. A switch starts the new version,
waits until it is ready, points the front at it, waits for the requests still in flight on the
old one (up to a drain timeout), then stops the old one: clients see no failed request, and a
failed start never leaves the model without a server.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from pydantic import BaseModel

from fearless.bundles.bundle import Bundle
from fearless.ids import checked_id
from fearless.platform import processes
from fearless.platform.preload import Launcher
from fearless.production.front import ADMIN_PATH

FRONT_MODULE = "fearless.production.front"


class ProductionInstance(BaseModel):
    model: str
    digest: str
    url: str
    """The model's stable production address (its front)."""
    handle: processes.ProcessHandle
    upstream: str | None = None
    """This version's own model API, behind the front."""


class Front(BaseModel):
    model: str
    port: int
    handle: processes.ProcessHandle | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _write_json(path: Path, model: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(model.model_dump_json(indent=2))
    os.replace(tmp, path)


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

    def _record(self, model: str) -> Path:
        return self.root / f"{checked_id(model, 'model name')}.json"

    def _front_record(self, model: str) -> Path:
        return self.root / "fronts" / f"{checked_id(model, 'model name')}.json"

    def current(self, model: str) -> ProductionInstance | None:
        try:
            return ProductionInstance.model_validate_json(self._record(model).read_text())
        except FileNotFoundError:
            return None

    def front(self, model: str) -> Front:
        """The model's front; its port is chosen once and kept, so its URL never changes."""
        try:
            return Front.model_validate_json(self._front_record(model).read_text())
        except FileNotFoundError:
            front = Front(model=model, port=processes.free_port())
            _write_json(self._front_record(model), front)
            return front

    def start(self, bundle: Bundle) -> ProductionInstance:
        """Start (but do not yet switch to) a production instance of `bundle`."""
        port = processes.free_port()
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
        )

    def switch(self, instance: ProductionInstance) -> ProductionInstance | None:
        """Make `instance` the model's production service; drain, stop and return the previous."""
        previous = self.current(instance.model)
        front = self._point_front(instance.model, instance.upstream or instance.url)
        _write_json(self._record(instance.model), instance)
        if previous is not None and previous.handle != instance.handle:
            self._drain(front, previous.upstream or previous.url)
            processes.stop(previous.handle)
        return previous

    def _point_front(self, model: str, upstream: str) -> Front:
        """Tell the running front to forward to `upstream`, or start the front doing so."""
        front = self.front(model)
        if front.handle is not None and processes.is_alive(front.handle):
            answer = httpx.put(f"{front.url}{ADMIN_PATH}/upstream", json={"url": upstream})
            answer.raise_for_status()
            return front
        handle = self.launcher.start(
            FRONT_MODULE,
            ["--port", str(front.port), "--upstream", upstream],
            log_path=self.root / "logs" / f"front-{model}.log",
        )
        try:
            processes.wait_until_ready(f"{front.url}{ADMIN_PATH}", handle, self.ready_timeout_s)
        except (RuntimeError, TimeoutError):
            processes.stop(handle)
            raise
        front = front.model_copy(update={"handle": handle})
        _write_json(self._front_record(model), front)
        return front

    def _drain(self, front: Front, upstream: str) -> None:
        """Wait until the front has no request in flight on `upstream` (or the timeout)."""
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline:
            try:
                state = httpx.get(f"{front.url}{ADMIN_PATH}", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return  # no front to drain through: nothing can be in flight on it
            if not state["in_flight"].get(upstream):
                return
            time.sleep(0.05)

    def discard(self, instance: ProductionInstance) -> None:
        processes.stop(instance.handle)

    def stop(self, model: str) -> list[str]:
        """Stop the model's API and front; the front keeps its port for the next start."""
        stopped = []
        instance = self.current(model)
        if instance is not None:
            if processes.stop(instance.handle):
                stopped.append(model)
            self._record(model).unlink(missing_ok=True)
        record = self._front_record(model)
        if record.is_file():
            front = Front.model_validate_json(record.read_text())
            if front.handle is not None and processes.stop(front.handle):
                stopped.append(f"{model} (front)")
            _write_json(record, front.model_copy(update={"handle": None}))
        return stopped

    def stop_all(self) -> list[str]:
        records = [*self.root.glob("*.json"), *self.root.glob("fronts/*.json")]
        return [name for model in sorted({r.stem for r in records}) for name in self.stop(model)]
