"""Test environments as local model API processes, recorded as JSON files under the state dir."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from fearless.bundles.bundle import Bundle
from fearless.environments import Environment, EnvironmentDown, EnvironmentError_
from fearless.ids import checked_id, path_inside
from fearless.platform import processes
from fearless.platform.preload import Launcher

PORT_ATTEMPTS = 3
PORT_TAKEN = "address already in use"  # how uvicorn says its bind failed (it then exits 3)


class LocalEnvironments:
    def __init__(
        self,
        root: Path,
        runs_root: Path,
        ready_timeout_s: float = 60.0,
        launcher: Launcher | None = None,
    ) -> None:
        self.root = root
        self.runs_root = runs_root
        self.ready_timeout_s = ready_timeout_s
        self.launcher = launcher or Launcher()

    def _record(self, release_id: str, role: str) -> Path:
        role = checked_id(role, "role")
        return self.root / checked_id(release_id, "release id") / f"{role}.json"

    def inference_log_dir(self, env: Environment) -> Path:
        release_id, role = checked_id(env.release_id, "release id"), checked_id(env.role, "role")
        return self.runs_root / release_id / "inference" / role

    def provision(
        self, release_id: str, role: str, bundle: Bundle, expires_at: datetime
    ) -> Environment:
        """Start the bundle's model API on a free port; safe to repeat (returns the live one)."""
        record = self._record(release_id, role)
        if record.is_file():
            existing = Environment.model_validate_json(record.read_text())
            if processes.is_alive(processes.ProcessHandle(**existing.handle)):
                return existing
        attempt = 1
        while True:
            env = self._start(release_id, role, bundle, expires_at, record)
            try:
                processes.wait_until_ready(
                    f"{env.url}/ready", processes.ProcessHandle(**env.handle), self.ready_timeout_s
                )
                return env
            except (RuntimeError, TimeoutError) as exc:  # RuntimeError: it exited
                port_taken = isinstance(exc, RuntimeError) and PORT_TAKEN in str(exc)
                if port_taken and attempt < PORT_ATTEMPTS:  # another server bound it first
                    attempt += 1
                    continue
                self.teardown(release_id)
                raise EnvironmentError_(
                    f"{role} model API for {release_id} did not start: {exc}"
                ) from exc

    def _start(
        self, release_id: str, role: str, bundle: Bundle, expires_at: datetime, record: Path
    ) -> Environment:
        port = processes.free_port()
        log_dir = self.runs_root / release_id / "inference" / role
        log_path = self.runs_root / release_id / "logs" / f"{role}-api.log"
        log_path.with_suffix(".exit").unlink(missing_ok=True)  # a previous attempt's
        handle = self.launcher.start(
            "fearless.serving",
            processes.model_api_args(bundle.path, port, log_dir),
            log_path=log_path,
            exit_path=log_path.with_suffix(".exit"),
        )
        env = Environment(
            release_id=release_id,
            role=role,
            model=bundle.name,
            digest=bundle.digest,
            url=f"http://127.0.0.1:{port}",
            created_at=datetime.now(UTC),
            expires_at=expires_at,
            handle=handle.model_dump(),
        )
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(env.model_dump_json(indent=2))
        return env

    def teardown(self, release_id: str) -> list[Environment]:
        removed = []
        folder = path_inside(self.root, checked_id(release_id, "release id"))
        for record in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            env = Environment.model_validate_json(record.read_text())
            processes.stop(processes.ProcessHandle(**env.handle))
            record.unlink(missing_ok=True)
            removed.append(env)
        shutil.rmtree(folder, ignore_errors=True)
        return removed

    def check(self, env: Environment) -> EnvironmentDown | None:
        handle = processes.ProcessHandle(**env.handle)
        if processes.is_alive(handle):
            return None
        exit_path = Path(handle.log_path).with_suffix(".exit")
        return EnvironmentDown(
            role=env.role,
            reason=processes.how_it_exited(handle, exit_path),
            log_tail=processes.log_tail(handle),
        )

    def list(self) -> list[Environment]:
        if not self.root.is_dir():
            return []
        return [
            Environment.model_validate_json(p.read_text())
            for p in sorted(self.root.glob("*/*.json"))
        ]

    def cost(self, env: Environment, until: datetime | None = None) -> None:
        """Local processes reserve nothing that is billed."""

    def parity(self, env: Environment) -> list[str] | None:
        """Local processes run the same code as production's; no definition to compare."""
        return None
