"""The evidence page and artifact, rendered from real-shaped inputs (see tests/fixtures/evidence)."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fearless.aws.prices import compute_cost
from fearless.bundles.source import ProjectSource
from fearless.drift.verdict import evaluate_drift
from fearless.evidence import (
    CostLine,
    Evidence,
    EvidenceError,
    environment_costs,
    rebuild_evidence,
    write_evidence,
)
from fearless.evidence.history import read_drift_scores
from fearless.loadtest.compare import compare_to_champion
from fearless.loadtest.simulation import SimulationOutcome, SimulationRequest
from fearless.loadtest.verdict import evaluate_load_test
from fearless.platform.reports import ReportLink
from fearless.release.candidate import TestEnvironments
from fearless.release.gates import DriftOutcome, LoadTestOutcome
from fearless.spec import DriftThresholds, SLOs
from tests.unit.test_loadtest_simulation import env
from tests.unit.test_loadtest_verdict import result

FIXTURES = Path(__file__).parent.parent / "fixtures" / "evidence"
SERVED = "http://fearless.example.org:4200/fearless/runs/r1"
SLO = SLOs(p95_ms=250, p99_ms=500)


def _run(role: str, **figures):
    prefix = FIXTURES / role / "locust"
    return result(
        csv_prefix=str(prefix), report_html=f"/runs/r1/loadtest/{role}/locust.html", **figures
    )


def evidence(backend="local", costs=None, parity=None, **changes) -> Evidence:
    candidate, champion = (
        _run("candidate", p95_ms=85, p99_ms=98),
        _run("champion", p95_ms=7, p99_ms=8),
    )
    scores = read_drift_scores(FIXTURES / "drift_scores.json")
    expires = datetime(2030, 1, 2, 3, 4, tzinfo=UTC)
    envs = TestEnvironments(
        candidate=env("r1", "candidate").model_copy(update={"expires_at": expires}),
        champion=env("r1", "champion").model_copy(update={"digest": "sha256:champ"}),
    )
    return Evidence(
        release_id="r1", model="credit", candidate_digest="sha256:cand", envs=envs,
        load=LoadTestOutcome(
            result=candidate, verdict=evaluate_load_test(candidate, SLO), champion=champion,
            regression=compare_to_champion(candidate, champion, 0.1),
        ),
        drift=DriftOutcome(scores=scores, verdict=evaluate_drift(scores, DriftThresholds())),
        backend=backend, costs=costs, parity=parity, **changes,
    )  # fmt: skip


def served(name: str) -> ReportLink:
    """The links the embedded server's report route gives release r1's reports."""
    return ReportLink(f"{SERVED}/{name}")


def simulation(run_dir: Path, number: int, **figures) -> SimulationOutcome:
    out = run_dir / "simulations" / str(number)
    out.mkdir(parents=True)
    outcome = SimulationOutcome(
        number=number, out_dir=str(out), target="http://r1-candidate",
        request=SimulationRequest(release_id="r1", profile="spike", scenario="new-purpose"),
        result=_run("simulation", profile="spike", **figures),
        verdict=evaluate_load_test(_run("simulation", **figures), SLO),
    )  # fmt: skip
    (out / "simulation.json").write_text(outcome.model_dump_json())
    return outcome


def plotted(page: str, chart: str) -> list[dict]:
    """The traces a chart of the page draws, as Plotly will read them."""
    start = page.index("[", page.index(f'"chart-{chart}",', page.index("Plotly.newPlot")))
    return json.JSONDecoder().raw_decode(page, start)[0]


def test_the_markdown_has_the_digests_figures_and_both_gates(tmp_path):
    files = write_evidence(tmp_path, evidence())
    md = files.markdown.read_text()
    assert md.startswith("# Release r1: credit\n")
    assert "- candidate: `sha256:cand`" in md and "- champion: `sha256:champ`" in md
    assert "(expires 2030-01-02 03:04 UTC)" in md
    assert "| p95_ms | 85 | 250 | yes |" in md
    # The candidate answers in ~80 ms, the champion in ~6 ms: far over the 10% margin.
    assert "### Against the champion, same load (margin 10%): FAILED" in md
    assert "| p95_ms | 85 | 7 | 8 | **no** |" in md
    assert "| agreement | 0.9515 | 0.9 | yes |" in md
    assert "| prediction_score | wasserstein | 0.01858 | 0.1 | no |" in md
    assert "Candidate agrees with the champion on 95.1% of 1587 records." in md
    assert "this evidence with charts: [evidence.html](evidence.html)" in md


def test_the_evidence_says_which_source_the_candidate_was_built_from(tmp_path):
    source = ProjectSource(
        model="credit", digest="sha256:" + "ab" * 32, path="/srv/worker/examples/credit",
        packed_by="prefect", host="worker-1", files=3, git_commit="c0ffee" * 6 + "1234",
        git_dirty=True,
    )  # fmt: skip
    md = write_evidence(tmp_path, evidence(source=source)).markdown.read_text()
    assert (
        "- candidate: `sha256:cand`, built from `/srv/worker/examples/credit` at commit "
        "c0ffeec0ffee with uncommitted changes, packed by prefect on worker-1 (3 files, pack "
        "sha256:abababababab)" in md
    )
    assert (
        "built from an unrecorded source"
        in write_evidence(tmp_path / "old", evidence()).markdown.read_text()
    )


def test_the_page_has_the_same_tables_and_links_the_reports_by_their_urls(tmp_path):
    page = write_evidence(tmp_path, evidence(), served).html.read_text()
    assert "<td>p95_ms</td><td>85</td><td>7</td><td>8</td><td><strong>no</strong></td>" in page
    assert "<td>agreement</td><td>0.9515</td><td>0.9</td><td>yes</td>" in page
    locust = f"{SERVED}/loadtest/candidate/locust.html"
    assert f'<a href="{locust}"><code>loadtest/candidate/locust.html</code></a>' in page
    # Without a publisher (a unit test), a report is its name in the run folder, beside the page.
    plain = write_evidence(tmp_path / "plain", evidence()).html.read_text()
    assert '<a href="loadtest/candidate/locust.html">' in plain


def test_no_report_is_named_by_where_the_worker_wrote_it(tmp_path):
    """The markdown (artifact, approval form) and the page link reports over HTTP, with the
    expiry of a presigned link stated; no path on the worker's disk is written."""
    until = datetime(2030, 1, 9, 3, 4, tzinfo=UTC)

    def presigned(name):
        return ReportLink(
            f"https://bucket.s3.amazonaws.com/reports/r1/{name}?X-Amz-Signature=ab&X-Amz-Expires=604800",
            until,
        )

    ev = evidence()
    ev.load.result.report_html = f"{tmp_path}/runs/r1/loadtest/candidate/locust.html"
    ev.drift.scores.report_html = f"{tmp_path}/runs/r1/drift/report.html"
    files = write_evidence(tmp_path / "runs" / "r1", ev, presigned)
    simulation(tmp_path / "runs" / "r1", 1)
    files = rebuild_evidence(tmp_path / "runs" / "r1", presigned)
    md, page = files.markdown.read_text(), files.html.read_text()
    for text in (md, page):
        assert str(tmp_path) not in text and "`/runs/" not in text
    valid = "(link valid until 2030-01-09 03:04 UTC)"
    url = "https://bucket.s3.amazonaws.com/reports/r1"
    assert f"Report: [loadtest/candidate/locust.html]({url}/loadtest/candidate/locust.html?" in md
    assert f"Report: [drift/report.html]({url}/drift/report.html?X-Amz-Signature=ab" in md
    assert f"this evidence with charts: [evidence.html]({url}/evidence.html?" in md
    assert md.count(valid) == 5  # the page, candidate, champion, drift, the simulation
    hrefs = re.findall(r'<a href="([^"]+)">', page)
    assert len(hrefs) == 5 and all(h.startswith(f"{url}/") for h in hrefs), hrefs
    assert "X-Amz-Signature=ab&amp;X-Amz-Expires=604800" in hrefs[0]


def test_only_web_links_become_links_on_the_page(tmp_path):
    ev = evidence()
    ev.load.notes = ["see [this](javascript:alert(1)) and `[quoted](https://x.org/y)`"]
    page = write_evidence(tmp_path, ev).html.read_text()
    assert "javascript:" not in re.findall(r'<a href="([^"]+)">', page).__str__()
    assert "<code>[quoted](https://x.org/y)</code>" in page


def test_the_charts_draw_candidate_beside_champion_and_drift_against_thresholds(tmp_path):
    page = write_evidence(tmp_path, evidence()).html.read_text()
    load = plotted(page, "load")
    p95 = {t["meta"]: t["y"] for t in load if t["name"] == "p95"}
    assert p95 == {"candidate": [None, 85, 84, 85], "champion": [None, 7, 7, 7]}
    assert {t["name"] for t in load} >= {"p50", "p99", "requests/s", "failures/s", "users"}
    drift = plotted(page, "drift")
    bars, ticks = drift
    assert bars["x"][0] == "age" and bars["x"][-1] == "prediction_score"
    assert bars["y"][0] == pytest.approx(0.020234753447355754)
    assert ticks["name"] == "threshold" and set(ticks["y"]) == {0.1}


def test_the_page_loads_nothing_from_the_network(tmp_path):
    write_evidence(tmp_path, evidence())
    simulation(tmp_path, 1)
    page = rebuild_evidence(tmp_path).html.read_text()
    assert page.count('<div id="chart-') == 3  # load, drift, the simulation
    assert page.count("plotly.js v") == 1  # the library inlined once
    sources = re.findall(
        r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*['\"]?([^'\" >]+)", page
    )
    assert not [s for s in sources if re.match(r"(https?:)?//", s)], sources
    assert "@import" not in page


def test_local_backend_says_cost_and_parity_do_not_apply(tmp_path):
    md = write_evidence(tmp_path, evidence()).markdown.read_text()
    assert "## Cost\n\nDoes not apply on the local backend" in md
    assert "## Parity\n\nDoes not apply on the local backend" in md


def test_aws_cost_and_parity_are_listed(tmp_path):
    cost = compute_cost(0.5, 1024, 2.0, "us-east-1")
    lines = [CostLine(role="candidate", until="now", cost=cost)]
    parity = ["cpu: test 512 units, production 1024", "desired count: test 1, production 2"]
    ev = evidence(backend="aws", costs=lines, parity=parity)
    md = write_evidence(tmp_path, ev).markdown.read_text()
    assert "| candidate | so far | 0.5 vCPU / 1 GB | 2.00 | 1.000 | 2.000 | $0.0494 |" in md
    assert "- cpu: test 512 units, production 1024\n- desired count" in md
    same = write_evidence(tmp_path, evidence(backend="aws", costs=lines, parity=[]))
    assert "matches the production service" in same.markdown.read_text()


class PricedEnvironments:
    """A backend billing 0.5 vCPU / 1 GB from each environment's creation."""

    def cost(self, env, until=None):
        hours = (until - env.created_at).total_seconds() / 3600
        return compute_cost(0.5, 1024, hours, "us-east-1")


def test_costs_cover_each_environment_so_far_and_until_expiry():
    envs = evidence().envs
    start = envs.candidate.created_at
    envs.candidate.expires_at = start + timedelta(hours=3)
    lines, note = environment_costs(PricedEnvironments(), envs, now=start + timedelta(hours=1))
    assert note is None
    assert [(x.role, x.until, round(x.cost.hours, 6)) for x in lines][:2] == [
        ("candidate", "now", 1.0), ("candidate", "expiry", 3.0),
    ]  # fmt: skip
    assert {x.role for x in lines} == {"candidate", "champion"}


def test_an_unpriced_region_is_a_note_not_a_failure():
    class Unpriced:
        def cost(self, env, until=None):
            return compute_cost(0.5, 1024, 1.0, "ap-south-2")

    lines, note = environment_costs(Unpriced(), evidence().envs)
    assert lines is None and "no Fargate price for ap-south-2" in note


def test_simulations_join_the_rebuilt_evidence_in_order(tmp_path):
    write_evidence(tmp_path, evidence())
    assert (
        "None yet: `fearless simulate r1 --profile spike` adds one."
        in (tmp_path / "evidence.md").read_text()
    )
    simulation(tmp_path, 2, p95_ms=400)
    simulation(tmp_path, 1)
    (tmp_path / "simulations" / "3").mkdir()  # still running: no simulation.json yet
    files = rebuild_evidence(tmp_path)
    md = files.markdown.read_text()
    rows = [line for line in md.splitlines() if line.startswith(("| 1 | ", "| 2 | "))]
    assert rows[0].startswith("| 1 | spike | new-purpose | synthetic | 10 | 10 s | 1000 | 150.0 |")
    assert rows[1].endswith(
        "| 20/400/200 | FAILED | [loadtest/simulation/locust.html](loadtest/simulation/locust.html) |"
    )
    assert "- p95_ms 400 over the maximum of 250" in md
    sim = plotted(files.html.read_text(), "simulation-1")
    assert next(t for t in sim if t["name"] == "requests/s")["y"][-1] == 122.0


def test_rebuilding_without_evidence_names_the_run(tmp_path):
    with pytest.raises(EvidenceError, match="run r9 has no evidence yet"):
        rebuild_evidence(tmp_path / "r9")
    (tmp_path / "evidence.json").write_text("{}")
    with pytest.raises(EvidenceError, match="evidence.json is not readable evidence"):
        rebuild_evidence(tmp_path)


def test_a_damaged_simulation_result_names_its_file(tmp_path):
    write_evidence(tmp_path, evidence())
    (tmp_path / "simulations" / "1").mkdir(parents=True)
    (tmp_path / "simulations" / "1" / "simulation.json").write_text('{"number": 1}')
    with pytest.raises(EvidenceError, match=r"simulations/1/simulation.json is not a simulation"):
        rebuild_evidence(tmp_path)


def test_a_missing_history_leaves_a_note_instead_of_a_chart(tmp_path):
    ev = evidence()
    ev.load.result.csv_prefix = str(tmp_path / "gone" / "locust")
    ev.load.champion = None
    page = write_evidence(tmp_path, ev).html.read_text()
    assert f"No per-second history at {tmp_path}/gone/locust_stats_history.csv." in page
    assert '"chart-load"' not in page and '"chart-drift"' in page


def test_a_generator_that_ran_as_ecs_tasks_is_not_reported_as_idle(tmp_path):
    """Its CPU was not measured (another machine's): the figures say so instead of "0%"."""
    measured = write_evidence(tmp_path / "local", evidence()).markdown.read_text()
    assert measured.count("generator CPU 30%") == 2  # the fixture's, candidate and champion
    ev = evidence()
    ev.load.result = ev.load.result.model_copy(update={"generator_measured": False})
    remote = write_evidence(tmp_path / "ecs", ev).markdown.read_text()
    assert "generator CPU not measured (ECS tasks)" in remote
    assert remote.count("generator CPU 30%") == 1  # the champion's, measured here
