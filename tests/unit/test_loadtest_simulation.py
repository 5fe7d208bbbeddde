from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from fearless.environments import Environment
from fearless.loadtest import simulation
from fearless.loadtest.simulation import (
    SimulationError,
    SimulationOutcome,
    SimulationRequest,
    find_candidate,
    next_simulation_dir,
)
from fearless.loadtest.verdict import LoadTestVerdict
from tests.unit.test_loadtest_verdict import result


def env(release_id: str, role: str) -> Environment:
    now = datetime.now(UTC)
    return Environment(
        release_id=release_id, role=role, model="credit", digest="sha256:abc",
        url=f"http://{release_id}-{role}", created_at=now, expires_at=now, handle={},
    )  # fmt: skip


class FakeEnvironments:
    def __init__(self, *envs: Environment) -> None:
        self.envs = list(envs)

    def list(self) -> list[Environment]:
        return self.envs


def test_the_candidate_of_the_release_is_found():
    backend = FakeEnvironments(
        env("r1", "champion"), env("r1", "candidate"), env("r2", "candidate")
    )
    assert find_candidate(backend, "r1").url == "http://r1-candidate"


def test_no_live_candidate_says_which_releases_are_live():
    backend = FakeEnvironments(env("r1", "champion"), env("r2", "candidate"))
    with pytest.raises(SimulationError, match="r1 has no live candidate.*: r1, r2"):
        find_candidate(backend, "r1")


def test_simulations_are_numbered_in_order(tmp_path):
    assert next_simulation_dir(tmp_path) == (1, tmp_path / "simulations" / "1")
    (tmp_path / "simulations" / "7").mkdir()
    (tmp_path / "simulations" / "notes").mkdir()
    number, folder = next_simulation_dir(tmp_path)
    assert number == 8 and folder.is_dir()


def test_replay_options_need_replayed_traffic():
    with pytest.raises(ValidationError, match="only apply to --traffic replay"):
        SimulationRequest(release_id="r1", replay_speed=1.0)
    assert SimulationRequest(release_id="r1", traffic="replay", replay_speed=2.0).replay_speed == 2


def _cli(monkeypatch, run):
    from fearless import composition
    from fearless.cli import app
    from fearless.settings import get_settings

    settings = get_settings()
    services = SimpleNamespace(
        settings=settings,
        environments=None,
        registry=None,
        reports=composition.build_reports(settings),
    )
    monkeypatch.setattr(composition, "build_services", lambda *a: services)
    monkeypatch.setattr(simulation, "run_simulation", run)
    return lambda *args: CliRunner().invoke(app, ["simulate", *args])


def test_simulate_prints_the_figures_and_the_verdict(monkeypatch, tmp_path):
    asked = []

    def run(request, environments, registry, run_dir, inference_logs):
        asked.append(request)
        return SimulationOutcome(
            number=3, out_dir=str(tmp_path), request=request, target="http://cand",
            result=result(profile="spike"),
            verdict=LoadTestVerdict(passed=False, inconclusive=False, reasons=["p95 too high"], checks=[]),
        )  # fmt: skip

    invoke = _cli(monkeypatch, run)
    out = invoke("r1", "--profile", "spike", "--scenario", "new-purpose", "--users", "5")
    assert out.exit_code == 0, out.output
    assert (
        asked[0].profile == "spike" and asked[0].scenario == "new-purpose" and asked[0].users == 5
    )
    assert "simulation 3 of r1" in out.output and "p95 100 ms" in out.output
    assert "verdict: failed\n  - p95 too high" in out.output
    # No evidence for r1 yet (its gates are still running): the simulation joins it later.
    assert "evidence not updated: run r1 has no evidence yet" in out.output


def test_simulate_without_a_live_candidate_fails_clearly(monkeypatch):
    def run(*args):
        raise SimulationError("release r9 has no live candidate environment")

    out = _cli(monkeypatch, run)("r9")
    assert out.exit_code == 1 and "no live candidate" in out.output
