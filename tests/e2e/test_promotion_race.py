"""Promotion through Prefect: two flows promoting one model at once are serialized by the
strict limit, and the bake task records its verdict as an artifact."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from prefect import flow
from prefect.client.orchestration import get_client

from fearless.bundles.bundle import build_bundle
from fearless.production.bake import BakeResult
from fearless.production.promotion import PromotionResult
from fearless.release.candidate import Candidate
from fearless.spec import with_overrides
from tasks.bake import bake_end_state, bake_release
from tasks.promote import promote_model

pytestmark = pytest.mark.e2e
MODEL = "credit-race"  # a model of its own, so other e2e tests' `credit` is left alone


@flow(name="promote-race")
def promote_race(candidate: Candidate, approver: str) -> PromotionResult:
    return promote_model(candidate, approver, f"race-{approver}")


@flow(name="promote-and-bake")
def promote_and_bake(candidate: Candidate) -> tuple[PromotionResult, BakeResult]:
    promotion = promote_model(candidate, "ann", "bake-check")
    return promotion, bake_release("bake-check", candidate, promotion)


def candidate_of(project: Path, into: Path, registry, model: str = MODEL) -> Candidate:
    """The trained project under `model`'s name, built into the platform's registry."""
    copy = Path(shutil.copytree(project, into))
    spec = yaml.safe_load((copy / "fearless.yaml").read_text())
    (copy / "fearless.yaml").write_text(yaml.safe_dump({**spec, "name": model}, sort_keys=False))
    bundle = build_bundle(copy, registry)
    return Candidate(bundle_path=str(bundle.path), digest=bundle.digest, spec=bundle.spec)


def test_two_racing_promotions_never_overlap(platform, credit_project, credit_challenger, tmp_path):
    registry, production = platform.registry, platform.production
    candidates = {
        "ann": candidate_of(credit_project, tmp_path / "a", registry),
        "bob": candidate_of(credit_challenger, tmp_path / "b", registry),
    }
    results: dict[str, PromotionResult | BaseException] = {}
    start = threading.Barrier(len(candidates))

    def run(approver: str) -> None:
        start.wait()
        try:
            results[approver] = promote_race(candidates[approver], approver)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[approver] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in candidates]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert all(isinstance(r, PromotionResult) for r in results.values()), results
        first, second = sorted(results.values(), key=lambda r: r.started_at)
        assert first.finished_at <= second.started_at, (first, second)  # never at once
        assert (first.previous_digest, second.previous_digest) == (None, first.digest)
        assert registry.get_alias(MODEL, "production") == second.digest
        assert registry.get_alias(MODEL, "previous") == first.digest
        moves = [(m.alias, m.from_digest, m.to_digest) for m in registry.history(MODEL)]
        assert moves == [
            ("production", None, first.digest),
            ("production", first.digest, second.digest),
            ("previous", None, first.digest),
        ]
        assert first.url == second.url
        answer = httpx.get(f"{second.url}/metadata").json()
        assert answer["digest"] == second.digest
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(f"promote-{MODEL}")
        assert limit.limit == 1
    finally:
        production.stop(MODEL)


def test_bake_task_without_traffic_passes_and_records_an_artifact(
    platform, credit_project, tmp_path
):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    model = "credit-bake"
    candidate = candidate_of(credit_project, tmp_path / "a", platform.registry, model)
    candidate = candidate.model_copy(
        update={"spec": with_overrides(candidate.spec, {"bake": {"window_s": 2}}, "test")}
    )
    try:
        promotion, baked = promote_and_bake(candidate)
        assert baked.verdict.passed and baked.rolled_back_to is None
        assert "too little traffic" in baked.verdict.notes[0]
        assert 2 <= baked.verdict.watched_s < 10
        end = bake_end_state(baked, promotion)
        assert end.is_completed() and end.name == "Promoted"
        with get_client(sync_client=True) as client:
            keyed = ArtifactFilter(key=ArtifactFilterKey(any_=["bake-bake-check"]))
            artifacts = client.read_artifacts(artifact_filter=keyed)
        assert artifacts and "passed" in artifacts[0].data and "2 s" in artifacts[0].data
    finally:
        platform.production.stop(model)
