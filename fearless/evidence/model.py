"""What the evidence page is built from, kept as `<run_dir>/evidence.json` so it can be rebuilt.

The release's figures are saved once, when its gates have passed; simulations run later
against the same environment are read from their own folders each time the page is built.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from fearless.aws.prices import ComputeCost, PriceError
from fearless.bundles.source import ProjectSource
from fearless.environments import EnvironmentBackend
from fearless.loadtest.simulation import SimulationOutcome
from fearless.release.candidate import TestEnvironments
from fearless.release.gates import DriftOutcome, LoadTestOutcome
from fearless.staging import write_atomically

EVIDENCE_JSON = "evidence.json"


class EvidenceError(RuntimeError):
    """The evidence cannot be read or built (no evidence yet, a damaged input file)."""


class CostLine(BaseModel):
    """Compute one test environment reserved: so far, or if it is kept until it expires."""

    role: str
    until: str
    cost: ComputeCost


class Evidence(BaseModel):
    """Everything an approver decides from; `costs`/`parity` are None where they do not apply."""

    release_id: str
    model: str
    candidate_digest: str
    envs: TestEnvironments
    source: ProjectSource | None = None
    load: LoadTestOutcome
    drift: DriftOutcome
    backend: str
    costs: list[CostLine] | None = None
    cost_note: str | None = None
    parity: list[str] | None = None
    host_waits: list[str] = []
    """What the release's heavy steps waited for on a shared host, each said."""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def champion_digest(self) -> str | None:
        return self.envs.champion.digest if self.envs.champion else None


def environment_costs(
    backend: EnvironmentBackend, envs: TestEnvironments, now: datetime | None = None
) -> tuple[list[CostLine] | None, str | None]:
    """Each environment's compute so far and until its expiry, or (None, why) when unknown."""
    lines: list[CostLine] = []
    now = now or datetime.now(UTC)
    try:
        for env in filter(None, (envs.candidate, envs.champion)):
            for until, when in (("now", now), ("expiry", env.expires_at)):
                cost = backend.cost(env, until=when)
                if cost is None:
                    return None, None
                lines.append(CostLine(role=env.role, until=until, cost=cost))
    except PriceError as exc:
        return None, f"cost unknown: {exc}"
    return lines, None


def read_simulations(run_dir: Path) -> list[SimulationOutcome]:
    """The finished simulations of a run, in order; a folder still running (no JSON) is skipped."""
    root = run_dir / "simulations"
    found = []
    for path in root.glob("*/simulation.json") if root.is_dir() else []:
        if not path.parent.name.isdigit():
            continue
        try:
            found.append(SimulationOutcome.model_validate_json(path.read_text()))
        except ValidationError as exc:
            raise EvidenceError(f"{path} is not a simulation result: {exc}") from exc
    return sorted(found, key=lambda s: s.number)


def save_evidence(run_dir: Path, evidence: Evidence) -> Path:
    return write_atomically(run_dir / EVIDENCE_JSON, evidence.model_dump_json(indent=2))


def load_evidence(run_dir: Path) -> Evidence:
    """The saved inputs of a run's evidence, or an EvidenceError naming the run and file."""
    path = run_dir / EVIDENCE_JSON
    if not path.is_file():
        raise EvidenceError(
            f"run {run_dir.name} has no evidence yet ({path} does not exist): it is written "
            "once the load-test and drift gates have passed"
        )
    try:
        return Evidence.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise EvidenceError(f"{path} is not readable evidence: {exc}") from exc
