"""The reports a person is sent to (the evidence page, the Locust report, the Evidently report)
fetched over real HTTP from the links Fearless gives: the embedded server's report route, and
S3 presigned URLs (on moto). Every link the evidence markdown names resolves to the file's
bytes, and none names a path on the worker's disk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import AWS_REGION, s3_bucket

LINK = re.compile(r"\]\((https?://[^)\s]+)\)")


def fetch(url: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.status == 200, url
        return answer.read(), {k.lower(): v for k, v in answer.headers.items()}


def write_reports(run_dir) -> dict[str, bytes]:
    """The files the gates leave in a run folder: Locust's reports and Evidently's."""
    files = {
        "loadtest/candidate/locust.html": "<html>Locust: candidate, p95 85 ms – ok</html>",
        "loadtest/champion/locust.html": "<html>Locust: champion</html>",
        "drift/report.html": "<html>Evidently: " + "drift " * 20_000 + "</html>",
    }
    for name, text in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text, encoding="utf-8")
    return {name: (run_dir / name).read_bytes() for name in files}


def release_evidence(release_id: str, run_dir):
    """Real-shaped evidence of `release_id`, its reports where the gates wrote them."""
    from tests.unit.test_evidence import evidence

    ev = evidence().model_copy(update={"release_id": release_id})
    ev.load.result.report_html = str(run_dir / "loadtest" / "candidate" / "locust.html")
    ev.load.champion.report_html = str(run_dir / "loadtest" / "champion" / "locust.html")
    ev.drift.scores.report_html = str(run_dir / "drift" / "report.html")
    return ev


def publish_like_a_release(reports, release_id: str, run_dir):
    """What the pipeline does: link the Locust and Evidently reports (link_report), write the
    evidence naming every report by its link, and link the page."""
    from fearless.evidence import write_evidence
    from fearless.platform.reports import publishing_links

    locust = reports.publish(release_id, run_dir / "loadtest" / "candidate" / "locust.html")
    drift = reports.publish(release_id, run_dir / "drift" / "report.html")
    ev = release_evidence(release_id, run_dir)
    files = write_evidence(run_dir, ev, publishing_links(reports, release_id, run_dir))
    page = reports.publish(release_id, files.html)
    return files, {"evidence.html": page, "loadtest/candidate/locust.html": locust,
                   "drift/report.html": drift}  # fmt: skip


def test_on_the_embedded_server_every_report_is_fetched_from_its_link(platform, tmp_path):
    release_id = "credit-reports-over-http"
    run_dir = platform.settings.paths.run_dir(release_id)
    expected = write_reports(run_dir)
    files, links = publish_like_a_release(platform.reports, release_id, run_dir)
    expected["evidence.html"] = files.html.read_bytes()

    for name, link in links.items():
        assert link.url == f"{platform.settings.reports_url}/{release_id}/{name}"
        body, headers = fetch(link.url)
        assert body == expected[name], name
        assert headers["content-type"].startswith("text/html")
        assert "sandbox" in headers["content-security-policy"]

    markdown = files.markdown.read_text()
    assert str(run_dir) not in markdown and str(run_dir) not in files.html.read_text()
    named = LINK.findall(markdown)
    assert len(named) == 4, named  # the page, both Locust reports, the Evidently report
    for url in named:
        name = url.removeprefix(f"{platform.settings.reports_url}/{release_id}/")
        assert fetch(url)[0] == expected[name], url
    for url in re.findall(r'<a href="([^"]+)">', files.html.read_text()):
        assert fetch(url)[0] == expected[url.rsplit(f"/{release_id}/", 1)[1]]

    # `fearless evidence` on a machine with no state dir: the link, fetched from the server.
    elsewhere = {**os.environ, "FEARLESS_STATE_DIR": str(tmp_path / "laptop")}
    shown = subprocess.run(
        [sys.executable, "-m", "fearless.cli", "evidence", release_id],
        cwd=ROOT, env=elsewhere, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [links["evidence.html"].url]
    assert fetch(shown.stdout.strip())[0] == expected["evidence.html"]


def test_on_s3_every_report_is_fetched_from_its_presigned_link(moto_endpoint, tmp_path):
    from fearless.aws import client, make_session
    from fearless.platform.reports import S3Reports

    s3_bucket(moto_endpoint, "fearless-reports")
    s3 = client(make_session(AWS_REGION), "s3", moto_endpoint)
    expiry_s = 3600
    reports = S3Reports(s3, "fearless-reports", "reports", tmp_path / "runs", expiry_s)
    release_id = "credit-reports-on-s3"
    run_dir = tmp_path / "runs" / release_id
    expected = write_reports(run_dir)
    signed_at = datetime.now(UTC)
    files, links = publish_like_a_release(reports, release_id, run_dir)
    expected["evidence.html"] = files.html.read_bytes()

    for name, link in links.items():
        query = parse_qs(urlsplit(link.url).query)
        assert query.get("X-Amz-Expires") == [str(expiry_s)] or "Expires" in query, link.url
        assert abs(link.expires_at - (signed_at + timedelta(seconds=expiry_s))).total_seconds() < 60
        assert f"(link valid until {link.expires_at:%Y-%m-%d %H:%M} UTC)" in link.describe()
        body, headers = fetch(link.url)
        assert body == expected[name], name
        assert headers["content-type"].startswith("text/html")

    markdown = files.markdown.read_text()
    assert str(tmp_path) not in markdown and str(tmp_path) not in files.html.read_text()
    named = LINK.findall(markdown)
    assert len(named) == 4, named
    assert markdown.count(" (link valid until ") == 4
    for url in named:
        name = urlsplit(url).path.split(f"/reports/{release_id}/", 1)[1]
        assert fetch(url)[0] == expected[name], url  # the champion's report was uploaded too

    # From a machine with no run folder: signed anew from what S3 holds; nothing for a report
    # that was never published.
    laptop = S3Reports(s3, "fearless-reports", "reports", tmp_path / "laptop", expiry_s)
    assert fetch(laptop.link(release_id, "evidence.html").url)[0] == expected["evidence.html"]
    assert laptop.link(release_id, "loadtest/candidate/missing.html") is None


@pytest.mark.parametrize("name", ["../secret.html", ".hidden/x.html"])
def test_the_route_serves_nothing_but_the_run_folders(platform, name):
    (platform.settings.state_dir / "secret.html").write_text("the state dir")
    url = f"{platform.settings.reports_url}/credit-reports-over-http/{name}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        fetch(url)
    assert refused.value.code == 404
