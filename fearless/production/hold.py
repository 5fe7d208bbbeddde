"""Where the front sends a request its production model API could not take: held, not failed.

When production's model API dies, the supervisor starts it again on the same slot's port, which
takes seconds. Meanwhile nginx cannot connect to the slot (its own 502), and instead of
answering that it passes the request, body and all, to this hold server (`error_page 502`),
run by the supervisor on the front's `hold` port. The hold server waits until the slot's port
takes connections again (up to `HOLD_S`), forwards the request there, and relays the answer: a
client sees a slow answer, not an error. Only to the two slots' loopback ports, never elsewhere;
an upstream that answered by itself (a 5xx of the model API) is never retried. A connection the
dying process took and dropped unanswered is tried again on the new one, within the same wait.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOLD_S = 60.0
# Headers of one hop, never relayed (RFC 9110 section 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-fearless-slot",
}


def wait_for_port(port: int, timeout_s: float) -> bool:
    """Whether something takes connections on the loopback `port` within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# A connection dropped before any answer began: the request was not taken, so sending it again
# is what nginx did to bring it here. An answer cut part-way (IncompleteRead) is never resent.
NOT_TAKEN = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


def _forward(
    port: int, method: str, path: str, body: bytes, headers: dict[str, str]
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        answer = conn.getresponse()
        try:
            return answer, answer.read()
        except OSError as exc:  # begun, then cut: never NOT_TAKEN
            raise http.client.IncompleteRead(b"") from exc
    finally:
        conn.close()


def _handler(slot_port: Callable[[str], int | None], hold_s: float):
    class Hold(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _hold(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            port = slot_port(self.headers.get("X-Fearless-Slot", ""))
            if port is None:
                return self._answer(400, b"no such slot")
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            deadline = time.monotonic() + hold_s
            while (left := deadline - time.monotonic()) > 0 and wait_for_port(port, left):
                try:
                    answer, data = _forward(port, self.command, self.path, body, headers)
                    break
                except NOT_TAKEN:
                    # The dying process's socket took the connection and dropped it unanswered
                    # (its exit closes what its backlog held): wait for the new one again.
                    time.sleep(0.05)
                except (OSError, http.client.HTTPException):
                    return self._answer(502, b"production did not answer", retry_after=True)
            else:
                return self._answer(503, b"production is restarting", retry_after=True)
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _answer(self, status: int, text: bytes, retry_after: bool = False) -> None:
            self.send_response(status)
            if retry_after:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _hold

        def log_message(self, *args) -> None:  # the front's access log has every request
            pass

    return Hold


class HoldServer:
    """One front's hold server, on a thread of the supervisor."""

    def __init__(
        self, port: int, slot_port: Callable[[str], int | None], hold_s: float = HOLD_S
    ) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _handler(slot_port, hold_s))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
