from __future__ import annotations

from prefect import get_run_logger, task

from fearless.bundles.source import ProjectSource, build_from_source
from fearless.composition import build_services
from fearless.release.candidate import Candidate
from fearless.spec import with_overrides
from tasks import STEP, beside_no_load_test


@task(name="build-bundle", **STEP)
def build_bundle(
    release_id: str, source: ProjectSource, overrides: dict | None = None
) -> Candidate:
    """Build the content-addressed bundle of exactly the source pack the release was given."""
    services = build_services()
    with beside_no_load_test(services, release_id, "build"):
        bundle = build_from_source(
            source, services.registry, trust_pickle=services.settings.trust_pickle
        )
    spec = with_overrides(bundle.spec, overrides, source=f"{source.path} (run overrides)")
    get_run_logger().info(
        "bundle %s %s at %s, from %s", bundle.name, bundle.digest, bundle.path, source.describe()
    )
    return Candidate(bundle_path=str(bundle.path), digest=bundle.digest, spec=spec, source=source)
