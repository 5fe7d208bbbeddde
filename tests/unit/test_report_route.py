"""The embedded server's report route: files of the run folders, nothing else of the state dir."""

from starlette.applications import Starlette
from starlette.testclient import TestClient

from fearless.platform.reports import ServedReports, report_route


def client(state, auth=None):
    return TestClient(Starlette(routes=[report_route(state / "runs", auth)]))


def test_a_report_is_served_sandboxed_and_nothing_outside_the_run_folder(tmp_path):
    run = tmp_path / "runs" / "credit-1"
    (run / "drift").mkdir(parents=True)
    (run / "drift" / "report.html").write_text("<html>drift</html>")
    (run / ".hidden").write_text("no")
    (tmp_path / "registry.json").write_text("secret")
    (run / "link").symlink_to(tmp_path / "registry.json")
    http = client(tmp_path)
    answer = http.get("/fearless/runs/credit-1/drift/report.html")
    assert answer.status_code == 200 and answer.text == "<html>drift</html>"
    assert "sandbox" in answer.headers["content-security-policy"]
    for bad in ("credit-1/../../registry.json", "credit-1/%2e%2e/%2e%2e/registry.json",
                "credit-1/.hidden", "credit-1/link", "..%2Fregistry.json/x", "credit-1/nope.html",
                "CREDIT-1/drift/report.html"):  # fmt: skip
        assert client(tmp_path).get(f"/fearless/runs/{bad}").status_code == 404, bad
    url = ServedReports(tmp_path / "runs", "http://h:1/fearless/runs").publish(
        "credit-1", run / "drift" / "report.html"
    )
    assert url.url == "http://h:1/fearless/runs/credit-1/drift/report.html"


def test_a_server_with_an_auth_string_asks_for_it(tmp_path):
    (tmp_path / "runs" / "credit-1").mkdir(parents=True)
    (tmp_path / "runs" / "credit-1" / "evidence.html").write_text("page")
    http = client(tmp_path, auth="admin:pw")
    refused = http.get("/fearless/runs/credit-1/evidence.html")
    assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
    assert http.get("/fearless/runs/credit-1/evidence.html", auth=("admin", "pw")).text == "page"
