"""The production service of each model on the embedded default.

Each model has a front (`fearless.production.front`: an nginx of its own) on a port that never
changes, and two upstream slots. A switch starts the new version in the idle slot, waits until
it is ready, checks it is the model API Fearless started there for that bundle, points the
front at it, waits until the old version has no connection from the front left (up to a drain
timeout), then stops it: clients see no failed request, and a failed start never leaves the
model without a server.

During a bake window the previous version runs again in the idle slot as a shadow (started
beside the window's watch, which need not wait for it): the front mirrors every request to it,
its inference log goes to a folder of its own (never the live traffic the drift check reads),
and it is stopped when the window ends (or, if a worker died mid-window, by the next start or
stop of the model).

A production model API that dies is started again, same bundle on the same slot's port, by the
supervisor `fearless server up` starts (`keep_up`, run by `python -m fearless.production.fronts`
beside the fronts'): the front keeps pointing at that slot, so production is back on its own
version as soon as the new process is ready. Requests meanwhile wait, held by the supervisor's
hold server (`fearless.production.hold`), and are answered by the new process.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from pydantic import BaseModel

from fearless.bundles.bundle import Bundle
from fearless.ids import checked_id
from fearless.platform import processes
from fearless.platform.preload import Launcher
from fearless.production.bake import WindowReader
from fearless.production.front import FrontError
from fearless.production.front_log import AccessLog
from fearless.production.fronts import Front, Fronts, write_json
from fearless.production.shadow import ShadowPairs, ShadowStart

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
    bundle_path: str | None = None
    log_dir: str | None = None
    """What the supervisor needs to start this version again if its model API dies."""


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

    def _shadow_record(self, model: str) -> Path:
        return self.root / "shadows" / f"{checked_id(model, 'model name')}.json"

    def _stop_shadow(self, model: str) -> bool:
        """Stop the model's shadow, if one runs (a window ended, or its worker died in one)."""
        self.fronts.nginx(model).mirror(False)
        record = self._shadow_record(model)
        try:
            shadow = ProductionInstance.model_validate_json(record.read_text())
        except FileNotFoundError:
            return False
        stopped = processes.stop(shadow.handle)
        shutil.rmtree(record.with_suffix(""), ignore_errors=True)
        record.unlink(missing_ok=True)
        return stopped

    def _start_shadow(self, bundle: Bundle, serving: ProductionInstance) -> ProductionInstance:
        """Start `bundle` in the slot `serving` does not use, logging under a folder of its own."""
        slot = "green" if serving.slot == "blue" else "blue"
        port = self.fronts.free_slot(bundle.name, slot)
        logs = self._shadow_record(bundle.name).with_suffix("")
        handle = self.launcher.start(
            "fearless.serving",
            processes.model_api_args(bundle.path, port, logs),
            log_path=self.root / "logs" / f"{bundle.name}-{bundle.short_digest}-shadow.log",
        )
        shadow = ProductionInstance(
            model=bundle.name,
            digest=bundle.digest,
            url=f"http://127.0.0.1:{port}",
            handle=handle,
            upstream=f"http://127.0.0.1:{port}",
            slot=slot,
        )
        write_json(self._shadow_record(bundle.name), shadow)
        processes.wait_until_ready(f"{shadow.upstream}/ready", handle, self.ready_timeout_s)
        self._verify(shadow, self.front(bundle.name))  # copies of requests go nowhere else
        return shadow

    def front(self, model: str) -> Front:
        """The model's front; its ports are chosen once and kept, so its URL never changes."""
        return self.fronts.get(model)

    def start(self, bundle: Bundle) -> ProductionInstance:
        """Start (but do not yet switch to) `bundle` in its front's idle slot."""
        self._stop_shadow(bundle.name)
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
        except BaseException:  # not ready, or the run stopped (a cancel): not left in the slot
            processes.stop(handle)
            raise
        return ProductionInstance(
            model=bundle.name,
            digest=bundle.digest,
            url=self.front(bundle.name).url,
            handle=handle,
            upstream=upstream,
            slot=slot,
            bundle_path=str(bundle.path),
            log_dir=str(self.inference_logs),
        )

    def switch(self, instance: ProductionInstance) -> ProductionInstance | None:
        """Make `instance` the model's production service; drain, stop and return the previous."""
        previous = self.current(instance.model)
        nginx = self.fronts.nginx(instance.model)
        with self.fronts.locked(instance.model):
            self._verify(instance, self.front(instance.model))
            try:
                nginx.point(instance.slot)
                self.fronts.running(instance.model)
                write_json(self._record(instance.model), instance)
            except BaseException:  # the front and the record name one version, never two
                if previous is not None and previous.slot:
                    nginx.point(previous.slot)
                raise
        if previous is not None and previous.handle != instance.handle:
            try:
                self._drain(previous)
            finally:  # stopped even when the drain was cut short
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
    def bake_window(
        self,
        model: str,
        shadow: Bundle | None = None,
        release_id: str | None = None,
        until: datetime | None = None,
    ) -> Iterator[WindowReader | None]:
        """Log the front's requests while a bake watches; yield a reader of what the version
        serving now answered since (the cumulative counts a bake compares), or None with no front.
        With `shadow` (the previous version), also mirror the requests to it and count how
        its predictions compare with production's on the same records. (`release_id` and
        `until` go unused: the shadow is this window's own process, stopped when it ends.)"""
        instance, front = self.current(model), self.front(model)
        if instance is None or instance.upstream is None or front.handle is None:
            yield None
            return
        nginx = self.fronts.nginx(model)
        upstream = instance.upstream.removeprefix("http://")
        log = AccessLog(nginx.access_log, upstream, reopen=lambda: nginx.reopen_logs(front.handle))
        mirror = ShadowStart()
        try:
            nginx.log_requests(True)
            if shadow is not None:
                mirror.start(lambda: self._mirror_to(shadow, instance))
            yield mirror.reader(log.scrape)
        finally:
            nginx.log_requests(False)
            mirror.join()  # a shadow still starting is stopped too, not left behind
            self._stop_shadow(model)
            log.close()
            if mirror.pairs is not None:
                mirror.pairs.close()
        if mirror.error is not None:
            raise mirror.error

    def _mirror_to(self, bundle: Bundle, instance: ProductionInstance) -> ShadowPairs | None:
        """Start the shadow and mirror to it; None (no comparison) if it cannot start."""
        try:
            shadow = self._start_shadow(bundle, instance)
        except (RuntimeError, TimeoutError, OSError):
            self._stop_shadow(bundle.name)
            return None
        pairs = ShadowPairs.of(
            bundle.name,
            live=(self.inference_logs, instance.handle.pid),
            shadow=(self._shadow_record(bundle.name).with_suffix(""), shadow.handle.pid),
        )
        self.fronts.nginx(bundle.name).mirror(True)
        return pairs

    def stop(self, model: str) -> list[str]:
        """Stop the model's API and front; the front keeps its ports for the next start."""
        stopped = []
        self._stop_shadow(model)
        with self.fronts.locked(model):  # not restarted by the supervisor meanwhile
            instance = self.current(model)
            if instance is not None:
                if processes.stop(instance.handle):
                    stopped.append(model)
                self._record(model).unlink(missing_ok=True)
        if self.fronts.stop(model):
            stopped.append(f"{model} (front)")
        return stopped

    def keep_up(self) -> dict[str, str]:
        """Start again, on its slot, every production model API that died: what happened.

        A model whose lock another process holds is left to the next round, never waited for:
        the supervisor runs this, and a process stopping the model's front holds the lock until
        the supervisor has reaped the front's nginx master. Waiting here held every server
        down 15 s (the stop's grace) for that zombie."""
        done = {}
        for record in sorted(self.root.glob("*.json")):
            with self.fronts.locked(record.stem, wait=False) as mine:
                if not mine:
                    continue  # being switched or stopped: next round
                instance = self.current(record.stem)
                if (
                    instance is None
                    or instance.bundle_path is None
                    or processes.is_alive(instance.handle)
                ):
                    continue
                try:
                    self._restart(instance)
                    done[record.stem] = f"model API {instance.digest} restarted"
                except (RuntimeError, TimeoutError, OSError) as exc:
                    done[record.stem] = f"model API {instance.digest} could not restart: {exc}"
        return done

    def _restart(self, instance: ProductionInstance) -> None:
        port = int((instance.upstream or "").rsplit(":", 1)[-1])
        short = instance.digest.removeprefix("sha256:")[:12]
        handle = self.launcher.start(
            "fearless.serving",
            processes.model_api_args(
                Path(instance.bundle_path), port, Path(instance.log_dir or self.inference_logs)
            ),
            log_path=self.root / "logs" / f"{instance.model}-{short}.log",
        )
        try:
            processes.wait_until_ready(f"{instance.upstream}/ready", handle, self.ready_timeout_s)
        except (RuntimeError, TimeoutError):
            processes.stop(handle)
            raise
        write_json(self._record(instance.model), instance.model_copy(update={"handle": handle}))

    def stop_all(self) -> list[str]:
        models = {r.stem for r in self.root.glob("*.json")} | set(self.fronts.models())
        return [name for model in sorted(models) for name in self.stop(model)]
