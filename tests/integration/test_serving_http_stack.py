"""The model API's HTTP stack: a response's head is never held back for a body that comes
later (`fearless.serving.http_stack` joins a head to its body only within the loop's turn)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from fearless.platform.processes import free_port
from fearless.production.hold import wait_for_port
from tests.integration.conftest import stop_processes

ROOT = Path(__file__).resolve().parents[2]


STREAMING_APP = """
import sys
import uvicorn
from fearless.serving.http_stack import server_options

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"5")]})
    message = await receive()  # the rest of the request: sent only once the head is read
    body = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    await send({"type": "http.response.body", "body": body[::-1]})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            **server_options())
"""


def test_a_head_sent_before_its_body_is_ready_reaches_the_client_first(tmp_path):
    """The head is held only to the end of the loop's turn, not to the body: here the body
    waits on the client, which sends the rest of its request only once it has read the head."""
    script = tmp_path / "streaming_app.py"
    script.write_text(STREAMING_APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(script), str(port)], cwd=ROOT)
    try:
        assert wait_for_port(port, 30), "the test app never took connections"
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab"
            sock.sendall(head)
            answer = b""
            while b"\r\n\r\n" not in answer:  # times out (fails) if the head is held back
                answer += sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\n")
            sock.sendall(b"cde")
            while not answer.endswith(b"edcba"):
                chunk = sock.recv(4096)
                assert chunk, f"connection closed after {answer!r}"
                answer += chunk
    finally:
        stop_processes(proc)
