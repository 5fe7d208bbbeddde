"""`fearless evidence RUN_ID` and the evidence lines of `fearless pending`."""

import webbrowser

import pytest
from typer.testing import CliRunner

from fearless.cli import app
from fearless.commands.status import evidence_lines
from fearless.evidence import write_evidence
from fearless.platform.reports import ServedReports
from fearless.settings import Settings
from tests.unit.test_evidence import evidence


@pytest.fixture
def runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path))
    return tmp_path / "runs"


def invoke(*args):
    return CliRunner().invoke(app, ["evidence", *args])


def test_a_missing_run_fails_and_names_it(runs):
    out = invoke("credit-nope")
    assert out.exit_code == 1
    assert "no run credit-nope" in out.output and str(runs / "credit-nope") in out.output


def test_a_run_without_evidence_yet_says_so(runs):
    (runs / "credit-1").mkdir(parents=True)
    out = invoke("credit-1")
    assert out.exit_code == 1 and "run credit-1 has no evidence yet" in out.output


def test_a_path_is_not_a_run_id(runs):
    out = invoke("../etc")
    assert out.exit_code == 1 and "'../etc' is not a release id" in out.output


def test_the_paths_are_printed_and_open_uses_the_browser(runs, monkeypatch):
    files = write_evidence(runs / "credit-1", evidence())
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)

    out = invoke("credit-1")
    assert out.exit_code == 0, out.output
    url = f"{Settings().reports_url}/credit-1/evidence.html"
    assert out.output.splitlines() == [url, str(files.html), str(files.markdown)]
    assert opened == []

    assert invoke("credit-1", "--open").exit_code == 0
    assert opened == [url]


def test_rebuild_renders_the_page_again(runs):
    files = write_evidence(runs / "credit-1", evidence())
    files.html.unlink()
    assert invoke("credit-1").output.startswith(
        "(no HTML page yet: fearless evidence credit-1 --rebuild)"
    )
    out = invoke("credit-1", "--rebuild")
    assert out.exit_code == 0 and files.html.is_file()


def test_pending_links_the_page_and_the_artifact(tmp_path):
    settings = Settings(state_dir=tmp_path, public_url="https://fearless.example.org/")
    reports = ServedReports(settings.paths.runs, settings.reports_url)
    lines = evidence_lines(settings, "credit-1", reports)
    assert lines[0].split() == [
        "evidence:",
        "https://fearless.example.org/fearless/runs/credit-1/evidence.html",
    ]
    assert lines[1].strip() == f"{settings.ui_url}/artifacts/key/evidence-credit-1"
