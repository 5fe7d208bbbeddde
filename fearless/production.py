"""The production service of each model on the embedded default: one local model API process.

A switch starts the new bundle, waits until it is ready, records it, then stops the old one,
so a failed start never leaves the model without a server.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from fearless import processes
from fearless.bundle import Bundle
from fearless.preload import Launcher


class ProductionInstance(BaseModel):
    model: str
    digest: str
    url: str
    handle: processes.ProcessHandle


class LocalProductionService:
    def __init__(
        self,
        root: Path,
        inference_logs: Path,
        ready_timeout_s: float = 60.0,
        launcher: Launcher | None = None,
    ) -> None:
        self.root = root
        self.inference_logs = inference_logs
        self.ready_timeout_s = ready_timeout_s
        self.launcher = launcher or Launcher()

    def _record(self, model: str) -> Path:
        return self.root / f"{model}.json"

    def current(self, model: str) -> ProductionInstance | None:
        try:
            return ProductionInstance.model_validate_json(self._record(model).read_text())
        except FileNotFoundError:
            return None

    def start(self, bundle: Bundle) -> ProductionInstance:
        """Start (but do not yet switch to) a production instance of `bundle`."""
        port = processes.free_port()
        handle = self.launcher.start(
            "fearless.serving",
            processes.model_api_args(bundle.path, port, self.inference_logs),
            log_path=self.root / "logs" / f"{bundle.name}-{bundle.short_digest}.log",
        )
        instance = ProductionInstance(
            model=bundle.name, digest=bundle.digest, url=f"http://127.0.0.1:{port}", handle=handle
        )
        try:
            processes.wait_until_ready(f"{instance.url}/ready", handle, self.ready_timeout_s)
        except (RuntimeError, TimeoutError):
            processes.stop(handle)
            raise
        return instance

    def switch(self, instance: ProductionInstance) -> ProductionInstance | None:
        """Make `instance` the model's production service; stop and return the previous one."""
        previous = self.current(instance.model)
        record = self._record(instance.model)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}")
        tmp.write_text(instance.model_dump_json(indent=2))
        os.replace(tmp, record)
        if previous is not None and previous.handle != instance.handle:
            processes.stop(previous.handle)
        return previous

    def discard(self, instance: ProductionInstance) -> None:
        processes.stop(instance.handle)

    def stop_all(self) -> list[str]:
        stopped = []
        for record in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            instance = ProductionInstance.model_validate_json(record.read_text())
            if processes.stop(instance.handle):
                stopped.append(instance.model)
            record.unlink(missing_ok=True)
        return stopped
