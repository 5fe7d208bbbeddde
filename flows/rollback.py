"""Roll a model's production back to its previous version, by hand or from an automation."""

from __future__ import annotations

from prefect import flow, get_run_logger

from fearless.composition import build_services
from fearless.production.promotion import PromotionResult, rollback
from fearless.production.slot import promotion_slot
from fearless.release.notifications import notifier_from, rollback_notice


@flow(name="rollback")
def rollback_model(model: str, actor: str = "prefect", reason: str = "") -> PromotionResult:
    """Move `model:production` back to `model:previous` and switch the production service
    (holding the model's promotion slot, so no promotion or bake moves it meanwhile).

    Args:
        model: The model's name, as in its fearless.yaml.
        actor: Who asks for the rollback (recorded in the alias history).
        reason: Why (recorded in the alias history).
    """
    services = build_services()
    with promotion_slot(model):
        result = rollback(model, services.registry, services.production, actor=actor, reason=reason)
    get_run_logger().info("%s production is back at %s (%s)", model, result.digest, result.url)
    notifier_from(services.settings).send(
        rollback_notice(model, result.digest, by=actor, reason=reason)
    )
    return result
