"""A model API that dies under load is the finding, not noise: the gate names the crash."""

from __future__ import annotations

import os
import re
import signal
import threading
from datetime import UTC, datetime, timedelta

import pytest

from fearless.bundles.bundle import build_bundle
from fearless.environments.local import LocalEnvironments
from fearless.registry.local import LocalRegistry
from fearless.release.candidate import Candidate, TestEnvironments
from fearless.release.gates import run_load_test_gate
from fearless.spec import with_overrides


@pytest.fixture
def backend(tmp_path):
    environments = LocalEnvironments(tmp_path / "envs", tmp_path / "runs")
    yield environments
    environments.teardown("credit-crash")


def candidate_of(project, tmp_path, **overrides) -> Candidate:
    bundle = build_bundle(project, LocalRegistry(tmp_path / "registry"))
    load = {"rate": 40, "duration_s": 8}
    spec = with_overrides(bundle.spec, {"load": load, **overrides}, "test")
    return Candidate(bundle_path=str(bundle.path), digest=bundle.digest, spec=spec)


def provision(backend, candidate, role):
    expires = datetime.now(UTC) + timedelta(hours=1)
    return backend.provision("credit-crash", role, candidate.bundle(), expires)


def kill_later(env, after_s: float) -> threading.Timer:
    timer = threading.Timer(after_s, os.kill, (env.handle["pid"], signal.SIGKILL))
    timer.start()
    return timer


def test_a_candidate_killed_mid_load_test_fails_the_gate_naming_the_crash(
    backend, credit_project, tmp_path
):
    candidate = candidate_of(credit_project, tmp_path)
    env = provision(backend, candidate, "candidate")
    kill_later(env, 4)
    outcome = run_load_test_gate(candidate, TestEnvironments(candidate=env), tmp_path, backend)
    assert not outcome.passed and not outcome.inconclusive
    first = outcome.reasons[0]
    assert re.fullmatch(
        r"candidate model API exited \(signal 9\) (\d+) s into the load test", first
    )
    assert 3 <= int(re.search(r"(\d+) s into", first)[1]) <= 8
    assert f"model API credit {env.digest}" in outcome.candidate_down.log_tail  # its last lines


def test_a_champion_that_dies_leaves_the_candidate_judged_alone_and_says_so(
    backend, credit_project, tmp_path
):
    candidate = candidate_of(credit_project, tmp_path, slos={"max_regression": 0.5})
    envs = TestEnvironments(
        candidate=provision(backend, candidate, "candidate"),
        champion=provision(backend, candidate, "champion"),
    )
    kill_later(envs.champion, 0.5)  # before, or early in, its run: paired runs it first
    outcome = run_load_test_gate(candidate, envs, tmp_path, backend)
    assert outcome.passed, outcome.reasons
    assert outcome.regression is None and outcome.result.requests > 0
    assert outcome.notes == [f"comparison with the champion skipped: {outcome.down[0].describe()}"]
    assert outcome.down[0].role == "champion" and "signal 9" in outcome.down[0].reason


def test_a_champion_down_at_the_drift_check_skips_the_comparison_and_says_so(
    backend, credit_project, tmp_path
):
    """The drift of what the candidate served is still judged; the champion is not scored."""
    import httpx

    from fearless.release.gates import run_drift_gate
    from tests.conftest import CREDIT_RECORD

    candidate = candidate_of(credit_project, tmp_path)
    envs = TestEnvironments(
        candidate=provision(backend, candidate, "candidate"),
        champion=provision(backend, candidate, "champion"),
    )
    for _ in range(50):
        httpx.post(f"{envs.candidate.url}/predict", json={"records": [CREDIT_RECORD]})
    os.kill(envs.champion.handle["pid"], signal.SIGKILL)
    served = backend.inference_log_dir(envs.candidate)
    outcome = run_drift_gate(candidate, envs, served, tmp_path / "drift", backend)
    assert outcome.scores.current_rows == 50 and outcome.scores.agreement is None
    assert outcome.notes == [
        "comparison with the champion skipped: champion model API exited (signal 9) "
        + outcome.down[0].during
    ]
    assert outcome.candidate_down is None
