"""`fearless simulate` against a live candidate: its results kept, and added to the evidence."""

from __future__ import annotations


def test_a_simulation_drives_the_live_candidate_and_keeps_its_results(
    credit_project, model_api, tmp_path
):
    from fearless.bundles.bundle import build_bundle
    from fearless.loadtest.simulation import SimulationRequest, run_simulation
    from fearless.registry.local import LocalRegistry
    from tests.unit.test_loadtest_simulation import FakeEnvironments, env

    registry = LocalRegistry(tmp_path / "registry")
    bundle = build_bundle(credit_project, registry)
    live = env("r1", "candidate").model_copy(update={"url": model_api[0], "digest": bundle.digest})
    request = SimulationRequest(
        release_id="r1", profile="spike", users=4, duration_s=2, scenario="missing-debt-ratio"
    )
    run_dir = tmp_path / "runs" / "r1"

    outcome = run_simulation(request, FakeEnvironments(live), registry, run_dir, tmp_path / "none")

    assert outcome.number == 1 and outcome.out_dir == str(run_dir / "simulations" / "1")
    assert outcome.result.profile == "spike" and outcome.result.requests > 0
    assert 0.05 <= outcome.result.error_rate <= 0.15  # the scenario's missing values: 422s
    assert not outcome.verdict.passed
    saved = (run_dir / "simulations" / "1" / "simulation.json").read_text()
    assert '"scenario": "missing-debt-ratio"' in saved
    assert (run_dir / "simulations" / "1" / "locust.html").is_file()


def test_a_simulation_from_the_cli_lands_in_the_release_evidence(
    credit_project, model_api, tmp_path, monkeypatch
):
    """`fearless simulate` through the real composition root: the local registry and a live
    candidate recorded in the state dir (the module's model API), then the rebuilt evidence."""
    from typer.testing import CliRunner

    from fearless.bundles.bundle import build_bundle
    from fearless.cli import app
    from fearless.evidence import write_evidence
    from fearless.registry.local import LocalRegistry
    from fearless.settings import Settings
    from tests.unit.test_evidence import evidence, plotted
    from tests.unit.test_loadtest_simulation import env

    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path))
    paths = Settings().paths
    bundle = build_bundle(credit_project, LocalRegistry(paths.registry))
    live = env("r1", "candidate").model_copy(update={"url": model_api[0], "digest": bundle.digest})
    (paths.environments / "r1").mkdir(parents=True)
    (paths.environments / "r1" / "candidate.json").write_text(live.model_dump_json())
    files = write_evidence(paths.run_dir("r1"), evidence())

    args = ["simulate", "r1", "--profile", "spike", "--users", "4", "--duration", "2"]
    out = CliRunner().invoke(app, [*args, "--scenario", "new-purpose"])

    assert out.exit_code == 0, out.output
    assert f"evidence updated: {files.html}" in out.output
    assert f"  {Settings().reports_url}/r1/evidence.html" in out.output
    md = files.markdown.read_text()
    row = next(line for line in md.splitlines() if line.startswith("| 1 | spike |"))
    assert row.startswith("| 1 | spike | new-purpose | synthetic | 4 | ")
    report = "simulations/1/locust.html"
    assert row.endswith(f"| [{report}]({Settings().reports_url}/r1/{report}) |")
    # The chart draws Locust's real per-second history of the simulation.
    sim = plotted(files.html.read_text(), "simulation-1")
    assert max(next(t for t in sim if t["name"] == "requests/s")["y"]) > 0
    # A 2 s spike is at its peak for under a second, between two of Locust's 1 s samples.
    assert 1 <= max(next(t for t in sim if t["name"] == "users")["y"]) <= 4
