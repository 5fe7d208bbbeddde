"""The model registry: bundles by digest, the source packs releases build them from (see
`fearless.bundles.source`), and aliases (`production`, ...) that move atomically."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from fearless.bundles.bundle import Bundle


class AliasConflict(RuntimeError):
    """Someone else moved the alias first: the compare-and-swap lost."""


class AliasMove(BaseModel):
    model: str
    alias: str
    from_digest: str | None
    to_digest: str | None
    actor: str
    reason: str
    at: datetime


class Registry(Protocol):
    def store_bundle(self, staged: Path, digest: str) -> Bundle: ...

    def get_bundle(self, model: str, digest: str) -> Bundle: ...

    def store_source(self, model: str, digest: str, archive: Path) -> None: ...

    def get_source(self, model: str, digest: str) -> Path: ...

    def get_alias(self, model: str, alias: str) -> str | None: ...

    def set_alias(
        self,
        model: str,
        alias: str,
        digest: str | None,
        *,
        expected: str | None,
        actor: str,
        reason: str,
    ) -> AliasMove: ...

    def history(self, model: str) -> list[AliasMove]: ...

    def models(self) -> list[str]: ...
