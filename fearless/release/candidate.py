"""What moves between pipeline steps: the candidate under test and its environments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from fearless.bundles.bundle import Bundle, open_bundle
from fearless.bundles.source import ProjectSource
from fearless.environments import Environment
from fearless.spec import ModelSpec


class Candidate(BaseModel):
    """A built bundle and the spec its gates use (the bundle's, with this run's overrides)."""

    bundle_path: str
    digest: str
    spec: ModelSpec
    source: ProjectSource | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def bundle(self) -> Bundle:
        return open_bundle(Path(self.bundle_path))


class TestEnvironments(BaseModel):
    __test__ = False  # not a pytest class

    candidate: Environment
    champion: Environment | None = None


def environment_expiry(spec: ModelSpec, grace_s: int) -> datetime:
    """A test environment lives through its load test and approval wait, plus some grace."""
    seconds = spec.load.duration_s + spec.approval.timeout_s + grace_s
    return datetime.now(UTC) + timedelta(seconds=seconds)
