"""Another load test or drift scenario against a release's live candidate environment.

While a release waits for approval its candidate API is still up; a data scientist can drive it
again with another profile and traffic (synthetic, replayed from production, with or without a
drift scenario). Each simulation's figures, verdict and Locust reports go to
`<state>/runs/<release>/simulations/<n>/`, numbered in order, beside the release's evidence.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, model_validator

from fearless.environments import Environment, EnvironmentBackend
from fearless.loadtest.runner import LoadTestResult, run_load_test
from fearless.loadtest.verdict import LoadTestVerdict, evaluate_load_test
from fearless.registry import Registry
from fearless.spec import ModelSpec

TRAFFIC_RECORDS = 2000
TrafficSource = Literal["synthetic", "replay"]


class SimulationError(RuntimeError):
    """The simulation cannot run: no live candidate, an unknown scenario, no traffic to replay."""


class SimulationRequest(BaseModel):
    release_id: str
    profile: str | None = None
    users: int | None = None
    duration_s: int | None = None
    scenario: str | None = None
    traffic: TrafficSource = "synthetic"
    replay_since: datetime | None = None
    replay_speed: float | None = None
    processes: int = 0

    @model_validator(mode="after")
    def _replay_options_need_a_replay(self) -> SimulationRequest:
        if self.traffic != "replay" and (self.replay_since or self.replay_speed is not None):
            raise ValueError("--since and --speed only apply to --traffic replay")
        return self


class SimulationOutcome(BaseModel):
    number: int
    out_dir: str
    request: SimulationRequest
    target: str
    result: LoadTestResult
    verdict: LoadTestVerdict


def find_candidate(environments: EnvironmentBackend, release_id: str) -> Environment:
    """The release's live candidate environment, or a SimulationError saying what is live."""
    live = environments.list()
    for env in live:
        if env.release_id == release_id and env.role == "candidate":
            return env
    others = ", ".join(sorted({e.release_id for e in live})) or "none"
    raise SimulationError(
        f"release {release_id} has no live candidate environment (it was torn down, or never "
        f"provisioned); releases with live environments: {others}"
    )


def next_simulation_dir(run_dir: Path) -> tuple[int, Path]:
    """`simulations/<n>` with n one past the highest taken; created here so two runs never share."""
    root = run_dir / "simulations"
    root.mkdir(parents=True, exist_ok=True)
    number = max((int(p.name) for p in root.iterdir() if p.name.isdigit()), default=0) + 1
    while True:
        try:
            (root / str(number)).mkdir()
            return number, root / str(number)
        except FileExistsError:
            number += 1


def build_traffic(
    request: SimulationRequest, spec: ModelSpec, reference_path: Path, inference_logs: Path
) -> tuple[list[dict], list[float] | None]:
    """The records to send (scenario applied) and, for a timed replay, their offsets."""
    from fearless.bundles.bundle import read_reference
    from fearless.loadtest.traffic import read_replay, synthesize_traffic
    from simulations.scenarios import apply_scenario, load_scenarios

    offsets = None
    if request.traffic == "replay":
        try:
            replay = read_replay(inference_logs, spec, request.replay_since, TRAFFIC_RECORDS)
        except ValueError as exc:
            raise SimulationError(f"cannot replay production traffic: {exc}") from exc
        records, offsets = replay.records, replay.offsets_s
    else:
        reference = read_reference(spec, reference_path)
        records = synthesize_traffic(reference, spec, TRAFFIC_RECORDS, seed=0)
    if request.scenario:
        scenarios = load_scenarios()
        if request.scenario not in scenarios:
            known = ", ".join(sorted(scenarios))
            raise SimulationError(f"no scenario {request.scenario!r}; known: {known}")
        try:
            records = apply_scenario(records, scenarios[request.scenario], spec)
        except ValueError as exc:
            raise SimulationError(str(exc)) from exc
    return records, offsets if request.replay_speed is not None else None


def run_simulation(
    request: SimulationRequest,
    environments: EnvironmentBackend,
    registry: Registry,
    run_dir: Path,
    inference_logs: Path,
) -> SimulationOutcome:
    """Drive the release's candidate with the asked profile and traffic; judge it by its SLOs."""
    from fearless.loadtest.traffic import write_traffic

    env = find_candidate(environments, request.release_id)
    bundle = registry.get_bundle(env.model, env.digest)
    asked = {"profile": request.profile, "users": request.users, "duration_s": request.duration_s}
    load = bundle.spec.load.model_validate(
        {**bundle.spec.load.model_dump(), **{k: v for k, v in asked.items() if v is not None}}
    )
    records, offsets = build_traffic(request, bundle.spec, bundle.reference_path, inference_logs)
    number, out_dir = next_simulation_dir(run_dir)
    traffic_path = write_traffic(records, out_dir / "traffic.jsonl", offsets)
    result = run_load_test(
        env.url,
        load,
        traffic_path,
        out_dir,
        processes=request.processes,
        replay_speed=request.replay_speed,
    )
    outcome = SimulationOutcome(
        number=number,
        out_dir=str(out_dir),
        request=request,
        target=env.url,
        result=result,
        verdict=evaluate_load_test(result, bundle.spec.slos),
    )
    # Written whole then renamed: the evidence page, rebuilt at any time, reads finished ones only.
    partial = out_dir / ".simulation.json.tmp"
    partial.write_text(json.dumps(outcome.model_dump(mode="json"), indent=2))
    partial.replace(out_dir / "simulation.json")
    return outcome
