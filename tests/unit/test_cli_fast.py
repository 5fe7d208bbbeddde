"""The read-only commands (`status`, `pending`, `models`, `evidence`) start fast: they find the
server from the environment as `Settings` would, ask its REST API with the standard library,
and import neither Prefect, httpx nor pydantic (bench/cli.py times them on a live server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from fearless.cli import app
from fearless.platform.address import read_address
from fearless.settings import Settings
from tests.conftest import ROOT

ENVIRONMENTS = [
    {},
    {"FEARLESS_STATE_DIR": "relative/state", "FEARLESS_SERVER_PORT": "4300"},
    {"fearless_server_host": "0.0.0.0", "FEARLESS_PUBLIC_URL": "https://fearless.example.org/"},
    {"FEARLESS_STATE_DIR": "~/fl", "PREFECT_API_URL": "https://prefect.example.org/api"},
]
HEAVY = ("prefect", "httpx", "pydantic", "pydantic_settings", "fearless.settings", "boto3")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_address_is_what_settings_say(env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("FEARLESS_STATE_DIR", "FEARLESS_SERVER_PORT", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    address, settings = read_address(), Settings()
    assert address.state_dir == settings.state_dir
    assert address.runs == settings.paths.runs and address.registry == settings.paths.registry
    assert (address.ui_url, address.reports_url) == (settings.ui_url, settings.reports_url)
    assert address.api_url == env.get("PREFECT_API_URL", settings.api_url)
    assert address.backend == settings.backend


@pytest.mark.parametrize(
    "name, value", [("FEARLESS_SERVER_PORT", "http"), ("FEARLESS_SERVER_PORT", "0"),
                    ("FEARLESS_BACKEND", "gcp")]
)  # fmt: skip
def test_a_value_only_settings_can_judge_fails_as_settings_do(name, value, monkeypatch):
    monkeypatch.setenv(name, value)
    assert read_address() is None
    answer = CliRunner().invoke(app, ["status"])
    assert answer.exit_code != 0
    assert name.removeprefix("FEARLESS_").lower() in str(answer.exception)


def imported_by(args: list[str], env: dict[str, str]) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['fearless', *{args!r}]\n"
        "import fearless.cli\n"
        "try:\n    fearless.cli.app()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "args", [["status"], ["status", "credit-1"], ["pending"], ["models"], ["evidence", "credit-1"]]
)
def test_read_only_commands_import_nothing_heavy(args, tmp_path):
    env = {**os.environ, "FEARLESS_STATE_DIR": str(tmp_path), "FEARLESS_SERVER_PORT": "9"}
    env.pop("PREFECT_API_URL", None)  # the server at port 9: nothing listens, fails fast
    modules = imported_by(args, env)
    assert "fearless.commands" in modules
    assert not [m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY]


class FakePrefect(BaseHTTPRequestHandler):
    """The few routes of Prefect's REST API the commands ask, recording what they send."""

    runs: ClassVar[list[dict]] = []
    board: ClassVar[list[dict]] = []
    seen: ClassVar[list[tuple[str, str, dict, dict]]] = []
    fail: ClassVar[bool] = False

    def _answer(self, body, status=200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.seen.append(("GET", self.path, dict(self.headers), {}))
        if self.path.startswith("/api/csrf-token?client="):
            self._answer({"token": "t0k"})
        else:
            self._answer({"detail": "no"}, 404)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(("POST", self.path, dict(self.headers), body))
        if self.fail:
            self._answer({"detail": "database is locked"}, 503)
        elif self.path == "/api/flow_runs/filter":
            paused = body.get("flow_runs", {}).get("state", {}).get("type", {}).get("any_")
            self._answer([r for r in self.runs if not paused or r["state"]["type"] in paused])
        elif self.path == "/api/variables/filter":
            self._answer(self.board)
        else:
            self._answer({"detail": "no"}, 404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_prefect(monkeypatch, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrefect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{port}/api")
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", "admin:pw")
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path))
    FakePrefect.seen, FakePrefect.fail = [], False
    FakePrefect.runs = [
        {"id": "0b5a7e1c-3f4e-4d6b-9a0e-2f1c7d8e9a01", "name": "credit-2", "tags": ["waiting:host"],
         "state": {"type": "PAUSED", "name": "Suspended", "timestamp": "2026-12-02T10:00:00Z",
                   "state_details": {"pause_timeout": "2026-12-02T11:00:00.5+00:00"}}},
        {"id": "0b5a7e1c-3f4e-4d6b-9a0e-2f1c7d8e9a02", "name": "credit-1", "tags": ["holds:host"],
         "state": {"type": "RUNNING", "name": "Running", "message": "load test",
                   "timestamp": "2026-12-02T09:00:00.123456Z"}},
    ]  # fmt: skip
    FakePrefect.board = [
        {"name": "fearless-production-credit", "value": {"model": "credit",
         "digest": "sha256:" + "ab" * 32, "url": "http://127.0.0.1:8000",
         "since": "2026-12-01T08:30:00.000001Z"}},
    ]  # fmt: skip
    yield port
    server.shutdown()


def test_status_and_pending_ask_the_rest_api_for_what_they_print(fake_prefect):
    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert status.output.splitlines() == [
        "releases:",
        "  credit-2                 Suspended     waiting for the host slot behind credit-1",
        "  credit-1                 Running       load test",
        "production:",
        "  credit                   sha256:abababababab  http://127.0.0.1:8000"
        + "  (since 2026-12-01 08:30 UTC)",
    ]
    pending = CliRunner().invoke(app, ["pending"])
    assert pending.exit_code == 0, pending.output
    reports = Settings().reports_url
    assert pending.output.splitlines() == [
        "credit-2  waiting since 2026-12-02 10:00 UTC, decide by 2026-12-02 11:00 UTC",
        f"  evidence: {reports}/credit-2/evidence.html",
        f"            {Settings().ui_url}/artifacts/key/evidence-credit-2",
        "  decide:   fearless approve credit-2 --by NAME --comment TEXT  (or fearless reject)",
    ]
    posts = [(path, headers) for method, path, headers, _ in FakePrefect.seen if method == "POST"]
    assert [p for p, _ in posts] == [
        "/api/flow_runs/filter", "/api/variables/filter", "/api/flow_runs/filter"
    ]  # fmt: skip
    for _, headers in posts:
        assert headers["Authorization"] == "Basic YWRtaW46cHc="  # admin:pw
        assert headers["Prefect-Csrf-Token"] == "t0k" and headers["Prefect-Csrf-Client"]


def test_a_server_error_is_said_with_the_servers_address(fake_prefect):
    FakePrefect.fail = True
    answer = CliRunner().invoke(app, ["status"])
    assert answer.exit_code == 1
    assert f"could not ask the Prefect server at http://127.0.0.1:{fake_prefect}/api" in (
        answer.output
    )
    assert "HTTP 503" in answer.output and "database is locked" in answer.output


def test_typer_still_checks_what_is_not_plain(tmp_path, monkeypatch):
    """Values pass through unchecked only where they already are what is declared."""
    monkeypatch.setenv("FEARLESS_STATE_DIR", str(tmp_path))
    answer = CliRunner().invoke(app, ["simulate", "credit-1", "--users", "many"])
    assert answer.exit_code == 2 and "'--users': Input should be a valid integer" in answer.output
    assert CliRunner().invoke(app, ["models", "--full"]).exit_code == 0
