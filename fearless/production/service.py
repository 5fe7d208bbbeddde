"""What promotion, rollback and status need of a model's production service, on any platform.

`fearless.production.local.LocalProductionService` (processes behind a local front) and
`fearless.production.ecs.EcsProductionService` (an ECS service behind the ALB) both fit;
`fearless.composition` builds one of them from settings.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from fearless.bundles.bundle import Bundle


class ProductionRevision(Protocol):
    """One version of a model that production runs, or could run."""

    @property
    def model(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def url(self) -> str: ...


Revision = TypeVar("Revision", bound=ProductionRevision)


class ProductionService(Protocol[Revision]):
    def current(self, model: str) -> Revision | None:
        """What serves `model` now; None when nothing does."""
        ...

    def start(self, bundle: Bundle) -> Revision:
        """Make `bundle` ready to serve without sending it traffic yet."""
        ...

    def switch(self, instance: Revision) -> Revision | None:
        """Send the model's traffic to `instance`; return what served it before."""
        ...

    def discard(self, instance: Revision) -> None:
        """Drop a started revision that will not serve (never the one serving)."""
        ...

    def stop_all(self) -> list[str]:
        """Stop what this machine runs for production; the models stopped."""
        ...
