"""The S3 registry against a moto server: bundles by digest, aliases by conditional writes."""

from __future__ import annotations

import json

import pytest

from fearless.bundles.bundle import BundleError
from fearless.bundles.integrity import bundle_digest, file_sha256
from fearless.registry import AliasConflict
from fearless.registry.s3 import S3Registry
from tests.integration.conftest import s3_bucket
from tests.unit.test_registry import race_for_the_alias

REGION = "us-east-1"
BUCKET = "fearless-registry"


@pytest.fixture(scope="module")
def s3(moto_endpoint):
    return s3_bucket(moto_endpoint, BUCKET)


@pytest.fixture
def registry(s3, tmp_path, request):
    return S3Registry(s3, BUCKET, f"t/{request.node.name}", tmp_path / "cache")


def staged(tmp_path, credit_spec: str, model: bytes) -> tuple:
    """A bundle folder with a manifest true to its files, and its digest."""
    folder = tmp_path / "staged"
    folder.mkdir()
    (folder / "fearless.yaml").write_text(credit_spec)
    (folder / "model.joblib").write_bytes(model)
    files = {p.name: file_sha256(p) for p in folder.iterdir()}
    digest = bundle_digest("credit", files)
    manifest = {"name": "credit", "digest": digest, "files": files}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, digest


def test_alias_moves_by_compare_and_swap_and_history_is_appended(registry):
    assert registry.get_alias("credit", "production") is None
    registry.set_alias("credit", "production", "sha256:a", expected=None, actor="ann", reason="1")
    with pytest.raises(AliasConflict, match="someone moved it first"):
        registry.set_alias("credit", "production", "sha256:b", expected=None, actor="b", reason="")
    registry.set_alias(
        "credit", "production", "sha256:b", expected="sha256:a", actor="bob", reason="2"
    )
    registry.set_alias("credit", "production", None, expected="sha256:b", actor="cy", reason="3")
    assert registry.get_alias("credit", "production") is None
    registry.set_alias("credit", "production", "sha256:c", expected=None, actor="di", reason="4")
    assert [(m.from_digest, m.to_digest, m.actor) for m in registry.history("credit")] == [
        (None, "sha256:a", "ann"),
        ("sha256:a", "sha256:b", "bob"),
        ("sha256:b", None, "cy"),
        (None, "sha256:c", "di"),
    ]


def test_a_stale_etag_loses_even_when_the_digest_check_passed(registry, s3):
    """The conditional write itself refuses a writer that read before another one wrote."""
    registry.set_alias("credit", "production", "sha256:a", expected=None, actor="a", reason="")
    original = registry._read_alias
    stale = original("credit", "production")

    registry.set_alias(
        "credit", "production", "sha256:b", expected="sha256:a", actor="b", reason=""
    )
    registry._read_alias = lambda model, alias: stale
    with pytest.raises(AliasConflict):
        registry.set_alias(
            "credit", "production", "sha256:c", expected="sha256:a", actor="c", reason=""
        )
    registry._read_alias = original
    assert registry.get_alias("credit", "production") == "sha256:b"


def test_racing_moves_have_exactly_one_winner(registry):
    winners, losers = race_for_the_alias(registry)
    assert len(winners) == 1 and len(losers) == 7
    assert registry.get_alias("credit", "production") == f"sha256:{winners[0]}"
    assert len(registry.history("credit")) == 1


def test_a_move_whose_history_write_was_lost_still_shows_in_history(registry, s3):
    registry._put_history = lambda *args: None
    registry.set_alias("credit", "production", "sha256:a", expected=None, actor="a", reason="")
    assert [m.to_digest for m in registry.history("credit")] == ["sha256:a"]


def test_bundles_are_stored_by_digest_and_fetched_into_the_cache(registry, tmp_path):
    spec = (
        "name: credit\nmodel: model.joblib\nreference_data: reference.parquet\n"
        "schema:\n  age: {type: int}\n"
    )
    folder, digest = staged(tmp_path, spec, b"model")
    bundle = registry.store_bundle(folder, digest)
    assert (bundle.path / "model.joblib").read_bytes() == b"model"
    assert registry.models() == ["credit"]

    fresh = S3Registry(registry.s3, BUCKET, registry.prefix, tmp_path / "other-cache")
    assert fresh.get_bundle("credit", digest).digest == digest
    with pytest.raises(BundleError, match="no such bundle"):
        fresh.get_bundle("credit", "sha256:nope")


def test_a_source_pack_uploaded_by_ci_is_what_the_worker_builds(registry, credit_project, tmp_path):
    """CI packs and uploads; a worker with another cache (another machine) fetches that pack."""
    from fearless.bundles.source import SourceError, build_from_source, pack_project

    files = ["fearless.yaml", "model.skops", "reference.parquet"]
    source, archive = pack_project(
        credit_project, files, model="credit", git_ref=None, packed_by="ci", into=tmp_path / "ci"
    )
    registry.store_source("credit", source.digest, archive)
    keys = [o["Key"] for o in registry._objects(registry._key("credit", "sources"))]
    assert keys == [registry._key("credit", "sources", source.digest[7:] + ".tar")]

    worker = S3Registry(registry.s3, BUCKET, registry.prefix, tmp_path / "worker-cache")
    bundle = build_from_source(source, worker, trust_pickle=False)
    assert json.loads((bundle.path / "manifest.json").read_text())["source"]["packed_by"] == "ci"

    missing = source.model_copy(update={"digest": "sha256:" + "0" * 64})
    with pytest.raises(SourceError, match="not in the store"):
        build_from_source(missing, worker, trust_pickle=False)
