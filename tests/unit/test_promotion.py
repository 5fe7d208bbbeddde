"""Promotion logic against a fake production service that records what happened to it."""

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from fearless.production.promotion import promote
from fearless.registry import AliasConflict
from fearless.registry.local import LocalRegistry


@dataclass
class FakeBundle:
    name: str
    digest: str
    spec: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(mlflow=None))


@dataclass(frozen=True)
class FakeInstance:
    digest: str

    @property
    def url(self) -> str:
        return f"http://fake/{self.digest}"


class BundleRegistry(LocalRegistry):
    """A local registry whose bundles are stand-ins: what a rollback looks up."""

    def get_bundle(self, model, digest):
        return FakeBundle(model, digest)


class FakeProduction:
    def __init__(self):
        self.started, self.switched, self.discarded = [], [], []

    def start(self, bundle):
        self.started.append(bundle.digest)
        return FakeInstance(bundle.digest)

    def switch(self, instance):
        self.switched.append(instance)

    def current(self, model):
        return self.switched[-1] if self.switched else None

    def discard(self, instance):
        self.discarded.append(instance)


def test_promote_moves_alias_keeps_previous_and_switches(tmp_path: Path):
    registry, production = LocalRegistry(tmp_path), FakeProduction()
    promote(FakeBundle("credit", "sha256:a"), registry, production, actor="ann", reason="r1")
    result = promote(
        FakeBundle("credit", "sha256:b"), registry, production, actor="bob", reason="r2"
    )
    assert result.previous_digest == "sha256:a"
    assert result.started_at <= result.finished_at
    assert registry.get_alias("credit", "production") == "sha256:b"
    assert registry.get_alias("credit", "previous") == "sha256:a"
    assert [i.digest for i in production.switched] == ["sha256:a", "sha256:b"]


def test_losing_a_race_discards_the_new_service_and_keeps_the_champion(tmp_path: Path):
    registry = LocalRegistry(tmp_path)

    class Racing(FakeProduction):
        def start(self, bundle):  # a rival promotes while this one's service starts
            registry.set_alias(
                "credit", "production", "sha256:rival", expected=None, actor="x", reason=""
            )
            return super().start(bundle)

    racing = Racing()
    with pytest.raises(AliasConflict):
        promote(FakeBundle("credit", "sha256:b"), registry, racing, actor="bob", reason="r")
    assert racing.discarded == [FakeInstance("sha256:b")] and racing.switched == []
    assert registry.get_alias("credit", "production") == "sha256:rival"


@pytest.mark.parametrize("champion", [None, "sha256:a"])
def test_a_switch_that_fails_puts_the_aliases_back(tmp_path: Path, champion):
    registry = LocalRegistry(tmp_path)

    class Refusing(FakeProduction):
        def switch(self, instance):  # e.g. ECS's circuit breaker rolled the deployment back
            raise RuntimeError("deployment rolled back by the circuit breaker")

    if champion:
        promote(FakeBundle("credit", champion), registry, FakeProduction(), actor="a", reason="")
    refusing = Refusing()
    with pytest.raises(RuntimeError, match="circuit breaker"):
        promote(FakeBundle("credit", "sha256:b"), registry, refusing, actor="bob", reason="r")
    assert registry.get_alias("credit", "production") == champion
    assert registry.get_alias("credit", "previous") is None
    assert refusing.discarded == [FakeInstance("sha256:b")]
    assert "switch failed: deployment rolled back" in registry.history("credit")[-1].reason


def test_rollback_swaps_production_and_previous(tmp_path: Path):
    from fearless.production.promotion import RollbackError, rollback

    registry, production = BundleRegistry(tmp_path), FakeProduction()
    with pytest.raises(RollbackError, match="no previous"):
        rollback("credit", registry, production, actor="ann", reason="r")
    promote(FakeBundle("credit", "sha256:a"), registry, production, actor="ann", reason="r1")
    promote(FakeBundle("credit", "sha256:b"), registry, production, actor="bob", reason="r2")
    result = rollback("credit", registry, production, actor="cat", reason="errors")
    assert result.digest == "sha256:a" and result.previous_digest == "sha256:b"
    assert registry.get_alias("credit", "production") == "sha256:a"
    assert registry.get_alias("credit", "previous") == "sha256:b"
    assert registry.history("credit")[-2].reason == "rollback: errors"


class Stopped(BaseException):
    """What a cancel raises in the run (Prefect's TerminationSignal is a BaseException too)."""


@pytest.mark.parametrize("took_effect", [False, True])
def test_a_promotion_stopped_part_way_leaves_the_registry_naming_what_serves(
    tmp_path: Path, took_effect
):
    registry = LocalRegistry(tmp_path)

    class StoppedInSwitch(FakeProduction):
        def switch(self, instance):
            if took_effect:  # the new version serves; the old one's drain is cut short
                self.switched.append(instance)
            raise Stopped

    production = StoppedInSwitch()
    promote(FakeBundle("credit", "sha256:a"), registry, FakeProduction(), actor="a", reason="")
    production.switched.append(FakeInstance("sha256:a"))
    with pytest.raises(Stopped):
        promote(FakeBundle("credit", "sha256:b"), registry, production, actor="bob", reason="r")
    serving = production.current("credit").digest
    assert registry.get_alias("credit", "production") == serving
    assert serving == ("sha256:b" if took_effect else "sha256:a")
    assert production.discarded == ([] if took_effect else [FakeInstance("sha256:b")])
    if not took_effect:
        assert registry.history("credit")[-1].reason == "switch failed: Stopped"


def test_withdraw_puts_the_previous_version_back_only_if_the_release_serves(tmp_path: Path):
    from fearless.production.promotion import withdraw

    registry, production = BundleRegistry(tmp_path), FakeProduction()
    promote(FakeBundle("credit", "sha256:a"), registry, production, actor="a", reason="")
    first = withdraw("credit", "sha256:a", registry, production, reason="cancelled")
    assert "keeps serving" in first and registry.get_alias("credit", "production") == "sha256:a"
    promote(FakeBundle("credit", "sha256:b"), registry, production, actor="b", reason="")
    assert withdraw("credit", "sha256:c", registry, production, reason="x").startswith(
        "credit:production is not sha256:c"
    )
    done = withdraw("credit", "sha256:b", registry, production, reason="release cancelled")
    assert done == "rolled back to sha256:a"
    assert registry.get_alias("credit", "production") == "sha256:a"
    assert production.current("credit").digest == "sha256:a"
    assert registry.history("credit")[-1].actor == "fearless-cancel"
