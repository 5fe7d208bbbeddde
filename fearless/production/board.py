"""What serves each model, recorded on the Prefect server after every switch.

`fearless status` reads it from there, so a laptop that reaches only the server sees
production without the worker's files or cloud credentials. `AnnouncedProduction` wraps any
production service; every promotion, rollback and bake rollback switches through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

PREFIX = "fearless-production-"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingRecord:
    """What serves `model` since when (a dataclass: `fearless status` reads these, and a
    pydantic model would cost it more to define than to read)."""

    model: str
    digest: str
    url: str
    since: datetime

    def to_json(self) -> dict[str, str]:
        return {**asdict(self), "since": self.since.isoformat()}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ServingRecord:
        since = datetime.fromisoformat(value["since"])
        return cls(value["model"], value["digest"], value["url"], since)


def variable_name(model: str) -> str:
    return f"{PREFIX}{model}"


def read_board(api) -> list[ServingRecord]:
    """Every model's record, by model name (`api`: a `fearless.platform.rest.PrefectApi`)."""
    records = [ServingRecord.from_json(v) for v in api.variables(PREFIX).values()]
    return sorted(records, key=lambda r: r.model)


def server_board(model: str, record: ServingRecord | None) -> None:
    """Record (or clear, with None) what serves `model` on the configured Prefect server."""
    from fearless.platform.rest import PrefectApi

    with PrefectApi.from_env() as api:
        if record is None:
            api.delete_variable(variable_name(model))
        else:
            api.set_variable(variable_name(model), record.to_json())


class AnnouncedProduction:
    """A production service that records each switch on the board; a failed record is logged,
    never a failed promotion (the next switch records again)."""

    def __init__(
        self, inner: Any, announce: Callable[[str, ServingRecord | None], None] = server_board
    ) -> None:
        self.inner = inner
        self.announce = announce

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def current(self, model: str):
        return self.inner.current(model)

    def start(self, bundle):
        return self.inner.start(bundle)

    def discard(self, instance) -> None:
        self.inner.discard(instance)

    def switch(self, instance):
        before = self.inner.switch(instance)
        record = ServingRecord(
            model=instance.model, digest=instance.digest, url=instance.url, since=datetime.now(UTC)
        )
        self._tell(instance.model, record)
        return before

    def stop_all(self) -> list[str]:
        stopped = self.inner.stop_all()
        for model in stopped:
            self._tell(model, None)
        return stopped

    def _tell(self, model: str, record: ServingRecord | None) -> None:
        try:
            self.announce(model, record)
        except Exception as exc:  # noqa: BLE001 (the service switched; only the record is behind)
            log.warning("could not record production of %s on the server: %s", model, exc)
