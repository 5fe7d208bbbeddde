"""A DNS-rebinding page cannot drive the embedded server: a request addressed to a Host name the
server does not know is refused before Prefect or the report route see it, while the names it
does know (loopback, the bind host, the public URL's, the configured extras) still reach the
API, both UIs and the websockets.

A page at http://rebind.evil.example:PORT whose name the attacker points at 127.0.0.1 is, to
the browser, same-origin with itself: CORS lets it read a CSRF token and send the resume. Only
the Host header it sends gives it away. These use the session's shared server (`platform`).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from fearless.platform.hosts import allowed_hosts, host_name, is_allowed
from fearless.settings import Settings

REBOUND = ["rebind.evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "evil"]


@pytest.fixture(scope="module")
def server(platform) -> str:
    """The shared server's base URL (http://127.0.0.1:PORT)."""
    return platform.settings.ui_url


def _with_host(server: str, host: str, method: str = "GET", path: str = "/api/health", **kw):
    port = urlsplit(server).port
    headers = {"Host": f"{host}:{port}", **kw.pop("headers", {})}
    return httpx.request(method, f"{server}{path}", headers=headers, timeout=10, **kw)


def _websocket_handshake(server: str, host: str, path: str = "/api/events/out") -> str:
    """The status line a websocket upgrade addressed to `host` gets."""
    address = urlsplit(server)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{address.port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096).decode("latin-1").split("\r\n", 1)[0]


@pytest.mark.parametrize("host", REBOUND)
@pytest.mark.parametrize("path", ["/api/health", "/api/csrf-token?client=x", "/v2/", "/"])
def test_a_rebound_name_is_refused_everywhere(server, host, path):
    answer = _with_host(server, host, path=path)
    assert answer.status_code == 421, (answer.status_code, answer.text)
    assert "FEARLESS_SERVER_ALLOWED_HOSTS" in answer.text


def test_a_rebinding_page_cannot_resume_a_release(server):
    """What the page would do once its name points at 127.0.0.1: take a token, then resume."""
    token = _with_host(server, "rebind.evil.example", path="/api/csrf-token?client=page")
    resume = _with_host(
        server,
        "rebind.evil.example",
        "POST",
        f"/api/flow_runs/{uuid.uuid4()}/resume",
        content=json.dumps({"run_input": {"approve": True, "approver": "cto"}}),
        headers={
            "Origin": "http://rebind.evil.example",
            "Content-Type": "application/json",
            "Prefect-Csrf-Token": "forged",
            "Prefect-Csrf-Client": "page",
        },
    )
    assert (token.status_code, resume.status_code) == (421, 421)


def test_a_rebound_name_cannot_open_a_websocket(server):
    assert " 403 " in _websocket_handshake(server, "rebind.evil.example")


def test_a_request_with_no_host_is_refused(server):
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(b"GET /api/health HTTP/1.0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 421 ")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LocalHost"])
def test_the_names_of_this_machine_still_reach_the_api_and_both_uis(server, host):
    assert _with_host(server, host).status_code == 200
    assert _with_host(server, host, path="/ui-settings").json()["csrf_enabled"] is True
    for ui in ("/v2/", "/"):  # the new UI, the classic one
        page = _with_host(server, host, path=ui)
        assert page.status_code == 200 and "<html" in page.text.lower(), ui
    assert _with_host(server, host, path="/fearless/runs/none/evidence.html").status_code == 404


def test_an_allowed_name_still_opens_a_websocket(server):
    assert " 101 " in _websocket_handshake(server, "localhost")


def test_prefects_client_and_the_cli_still_work(server):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow(client.create_flow_from_name("host-check-probe")).name


def test_the_allowed_names_follow_the_settings():
    settings = Settings(
        server_host="10.0.0.5",
        public_url="https://Fearless.Example.com/",
        server_allowed_hosts=["build-box.lan", "*.corp.example"],
    )
    names = allowed_hosts(settings)
    assert names[:3] == ["localhost", "127.0.0.1", "[::1]"]
    assert {"10.0.0.5", "fearless.example.com", "build-box.lan", "*.corp.example"} <= set(names)
    assert is_allowed("ci.corp.example", names) and not is_allowed("corp.example.evil", names)
    assert allowed_hosts(Settings(server_host="::1")).count("[::1]") == 1


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:4200", "127.0.0.1"),
        ("[::1]:4200", "[::1]"),
        ("[::1]", "[::1]"),
        ("Example.COM", "example.com"),
        ("", ""),
        ("[::1", ""),
    ],
)
def test_the_host_header_is_read_as_its_name_alone(header, name):
    assert host_name(header) == name
