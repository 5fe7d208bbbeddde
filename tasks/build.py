from __future__ import annotations

from prefect import get_run_logger, task

from fearless.bundles import bundle as bundles
from fearless.composition import build_services
from fearless.release.candidate import Candidate
from fearless.spec import with_overrides
from tasks import STEP


@task(name="build-bundle", **STEP)
def build_bundle(model_path: str, overrides: dict | None = None) -> Candidate:
    """Validate the model project and store its content-addressed bundle."""
    services = build_services()
    bundle = bundles.build_bundle(
        model_path, services.registry, trust_pickle=services.settings.trust_pickle
    )
    spec = with_overrides(bundle.spec, overrides, source=f"{model_path} (run overrides)")
    get_run_logger().info("bundle %s %s at %s", bundle.name, bundle.digest, bundle.path)
    return Candidate(bundle_path=str(bundle.path), digest=bundle.digest, spec=spec)
