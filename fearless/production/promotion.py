"""Promotion: move the registry's `production` alias and the production service together.

The alias moves by compare-and-swap, so of two candidates approved at once only one wins;
the loser's freshly started service is discarded and the champion keeps serving. A promotion
stopped part-way (an error, or its run cancelled) puts the aliases back and discards what it
started; one stopped after it took effect is withdrawn by its release (`withdraw`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from fearless.bundles.bundle import Bundle
from fearless.registry import AliasConflict

# Who moves the aliases back when a release is stopped after its promotion took effect.
WITHDRAW_ACTOR = "fearless-cancel"


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
    except BaseException as exc:  # an error, or the run stopped (a cancel)
        registry.set_alias(
            bundle.name, "production", previous, expected=bundle.digest, actor=actor,
            reason=f"MLflow alias not moved: {_why(exc)}",
        )  # fmt: skip
        production.discard(instance)
        raise
    before = registry.get_alias(bundle.name, "previous")
    try:
        if previous is not None and previous != bundle.digest:
            registry.set_alias(
                bundle.name, "previous", previous, expected=before, actor=actor, reason=reason
            )
        production.switch(instance)
    except BaseException as exc:
        serving = production.current(bundle.name)
        if serving is not None and serving.digest == bundle.digest:
            raise  # switched, only what came after was cut short: it serves, as the alias says
        _undo(registry, bundle, previous, before, actor, f"switch failed: {_why(exc)}")
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


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a cancel's signal says nothing by itself


def _undo(registry, bundle: Bundle, production: str | None, previous: str | None, actor, reason):
    """Put the aliases back (compare-and-swap) when the service could not switch, so the
    registry keeps naming what actually serves: the old service is still the one answering."""
    model, digest = bundle.name, bundle.digest
    registry.set_alias(model, "production", production, expected=digest, actor=actor, reason=reason)
    if registry.get_alias(model, "previous") != previous:
        registry.set_alias(
            model, "previous", previous, expected=production, actor=actor, reason=reason
        )


def withdraw(model: str, digest: str, registry, production, *, reason: str) -> str:
    """Put the previous version back if `digest` still serves: a release stopped (cancelled)
    once its promotion took effect leaves production as it found it. What was done."""
    if registry.get_alias(model, "production") != digest:
        return f"{model}:production is not {digest}: nothing to withdraw"
    try:
        back = rollback(model, registry, production, actor=WITHDRAW_ACTOR, reason=reason)
    except RollbackError as exc:
        return f"{exc}: {digest} keeps serving"
    return f"rolled back to {back.digest}"


class RollbackError(RuntimeError):
    """There is nothing to roll back to."""


def rollback(model: str, registry, production, *, actor: str, reason: str) -> PromotionResult:
    """Put the `previous` version back in production (the current one becomes `previous`)."""
    previous = registry.get_alias(model, "previous")
    if previous is None:
        raise RollbackError(f"{model} has no previous production version to roll back to")
    bundle = registry.get_bundle(model, previous)
    return promote(bundle, registry, production, actor=actor, reason=f"rollback: {reason}")
