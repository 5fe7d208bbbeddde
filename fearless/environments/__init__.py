"""Test environments: where a candidate's model API runs while it is tested and judged.

The pipeline only sees `EnvironmentBackend`; the local backend runs processes, an ECS one runs
services. Which one is built once from settings (see `fearless.composition`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel

from fearless.bundles.bundle import Bundle


class EnvironmentError_(RuntimeError):
    """An environment could not be provisioned or reached."""


class Environment(BaseModel):
    """One model API that a release created, with everything needed to find and remove it."""

    release_id: str
    role: str
    model: str
    digest: str
    url: str
    created_at: datetime
    expires_at: datetime
    handle: dict

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires_at


class EnvironmentDown(BaseModel):
    """A model API that is no longer running: which, why, and the last lines it logged."""

    role: str
    reason: str
    log_tail: str = ""
    during: str = ""  # when it was seen down, e.g. "8 s into the load test"

    def describe(self) -> str:
        return " ".join(filter(None, [f"{self.role} model API {self.reason}", self.during]))


class EnvironmentBackend(Protocol):
    def provision(
        self, release_id: str, role: str, bundle: Bundle, expires_at: datetime
    ) -> Environment: ...

    def teardown(self, release_id: str) -> list[Environment]:
        """Remove everything `release_id` created; safe to call twice or after a half-failure."""
        ...

    def list(self) -> list[Environment]: ...

    def check(self, env: Environment) -> EnvironmentDown | None:
        """None while `env`'s model API runs; else how it ended (a process's exit status, a
        task's stopped reason) and its last log lines. Cheap enough to poll."""
        ...

    def inference_log_dir(self, env: Environment): ...

    def cost(self, env: Environment, until: datetime | None = None):
        """A `fearless.aws.prices.ComputeCost` of what `env` reserved until `until` (default now);
        None where nothing is billed (local processes)."""
        ...

    def parity(self, env: Environment) -> list[str] | None:
        """How `env` differs from the model's production service (empty: it does not); None
        when there is no production definition to compare with."""
        ...
