"""The Locust users' client reports every request to Locust's statistics as Locust's own HTTP
users do: a 200 as a success, another status as "HTTP <code>", a connection that cannot be made
as its OSError; and a connection the server closed is opened again by the next request."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from fearless.platform.processes import free_port
from simulations.api_client import ApiClient, HttpFailure


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive unless an answer says close
    status = 200
    close_after = False
    bodies: ClassVar[list[bytes]] = []
    connections: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).connections.add(self.client_address[1])
        answer = b'{"predictions":[0]}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.close_after:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def _api(**behaviour):
    handler = type("Api", (_Api,), {"bodies": [], "connections": set(), **behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    finally:
        server.shutdown()
        server.server_close()


class _RequestEvent(list):
    """Locust's `events.request` as the client uses it (`fire(**request)`); Locust itself is
    not imported here: its import monkey-patches this test process for gevent."""

    def fire(self, **request) -> None:
        self.append(request)


def _client(url: str) -> tuple[ApiClient, list[dict]]:
    seen = _RequestEvent()
    return ApiClient(url, seen, timeout_s=5), seen


def test_a_200_is_a_success_with_its_length_and_the_connection_is_kept():
    with _api() as (url, api):
        client, seen = _client(url)
        assert [client.post("/predict", b'{"records":[1]}', {}) for _ in range(3)] == [200] * 3
        client.close()
    assert api.bodies == [b'{"records":[1]}'] * 3
    assert len(api.connections) == 1  # one kept-alive connection for the three
    assert [r["exception"] for r in seen] == [None] * 3
    assert {(r["request_type"], r["name"], r["response_length"]) for r in seen} == {
        ("POST", "/predict", len(b'{"predictions":[0]}'))
    }
    assert all(r["response_time"] > 0 for r in seen)
    assert seen[0]["url"] == url.rstrip("/") + "/predict"


def test_another_status_is_a_failure_named_by_its_code():
    with _api(status=503) as (url, _):
        client, seen = _client(url)
        assert client.post("/predict", b"{}", {}) == 503
        client.close()
    assert isinstance(seen[0]["exception"], HttpFailure)
    assert str(seen[0]["exception"]) == "HTTP 503"


def test_a_refused_connection_is_reported_not_raised():
    client, seen = _client(f"http://127.0.0.1:{free_port()}")
    assert client.post("/predict", b"{}", {}) == 0
    assert isinstance(seen[0]["exception"], ConnectionRefusedError)
    assert seen[0]["response_length"] == 0


def test_a_connection_the_server_closed_is_opened_again():
    with _api(close_after=True) as (url, api):
        client, seen = _client(url)
        assert [client.post("/predict", b"{}", {}) for _ in range(2)] == [200, 200]
        client.close()
    assert [r["exception"] for r in seen] == [None, None]
    assert len(api.connections) == 2
