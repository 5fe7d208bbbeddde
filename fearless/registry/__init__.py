"""The model registry: bundles by digest, the source packs releases build them from (see
`fearless.bundles.source`), and aliases (`production`, ...) that move atomically."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # `fearless models` reads aliases and history alone, and loads no bundle
    from fearless.bundles.bundle import Bundle


class AliasConflict(RuntimeError):
    """Someone else moved the alias first: the compare-and-swap lost."""


@dataclass
class AliasMove:
    """One move of an alias, as its history keeps it (a dataclass: `fearless models` reads
    every move, and defining a pydantic model would cost it more than reading them)."""

    model: str
    alias: str
    from_digest: str | None
    to_digest: str | None
    actor: str
    reason: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AliasMove:
        fields = {name: value[name] for name in cls.__dataclass_fields__ if name != "at"}
        return cls(**fields, at=datetime.fromisoformat(value["at"]))


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
