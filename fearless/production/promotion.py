"""Promotion: move the registry's `production` alias and the production service together.

The alias moves by compare-and-swap, so of two candidates approved at once only one wins;
the loser's freshly started service is discarded and the champion keeps serving.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from fearless.bundles.bundle import Bundle
from fearless.registry import AliasConflict


class PromotionResult(BaseModel):
    model: str
    digest: str
    previous_digest: str | None
    url: str
    started_at: datetime | None = None
    finished_at: datetime | None = None


def promote(bundle: Bundle, registry, production, *, actor: str, reason: str) -> PromotionResult:
    """Start the bundle's service, move the alias (compare-and-swap), then switch to it."""
    started_at = datetime.now(UTC)
    previous = registry.get_alias(bundle.name, "production")
    instance = production.start(bundle)
    try:
        registry.set_alias(
            bundle.name, "production", bundle.digest, expected=previous, actor=actor, reason=reason
        )
    except AliasConflict:
        production.discard(instance)
        raise
    try:  # the spec's MLflow alias (if it names one) follows, so the registries agree
        from fearless.bundles.mlflow_model import move_alias

        undo_mlflow = move_alias(bundle)
    except Exception as exc:
        registry.set_alias(
            bundle.name, "production", previous, expected=bundle.digest, actor=actor,
            reason=f"MLflow alias not moved: {exc}",
        )  # fmt: skip
        production.discard(instance)
        raise
    before = registry.get_alias(bundle.name, "previous")
    if previous is not None and previous != bundle.digest:
        registry.set_alias(
            bundle.name, "previous", previous, expected=before, actor=actor, reason=reason
        )
    try:
        production.switch(instance)
    except Exception as exc:
        _undo(registry, bundle, previous, before, actor, f"switch failed: {exc}")
        undo_mlflow()
        production.discard(instance)
        raise
    return PromotionResult(
        model=bundle.name,
        digest=bundle.digest,
        previous_digest=previous,
        url=instance.url,
        started_at=started_at,
        finished_at=datetime.now(UTC),
    )


def _undo(registry, bundle: Bundle, production: str | None, previous: str | None, actor, reason):
    """Put the aliases back (compare-and-swap) when the service could not switch, so the
    registry keeps naming what actually serves: the old service is still the one answering."""
    model, digest = bundle.name, bundle.digest
    registry.set_alias(model, "production", production, expected=digest, actor=actor, reason=reason)
    if registry.get_alias(model, "previous") != previous:
        registry.set_alias(
            model, "previous", previous, expected=production, actor=actor, reason=reason
        )


class RollbackError(RuntimeError):
    """There is nothing to roll back to."""


def rollback(model: str, registry, production, *, actor: str, reason: str) -> PromotionResult:
    """Put the `previous` version back in production (the current one becomes `previous`)."""
    previous = registry.get_alias(model, "previous")
    if previous is None:
        raise RollbackError(f"{model} has no previous production version to roll back to")
    bundle = registry.get_bundle(model, previous)
    return promote(bundle, registry, production, actor=actor, reason=f"rollback: {reason}")
