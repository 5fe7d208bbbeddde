"""A model API stand-in that answers at once: what Locust's cost per request is measured
against (`fearless.loadtest.sizing`), so the measure is the generator's, not a target's.

Hand-written because it must cost next to nothing per request (a real server's own CPU would
compete with the generator being measured), answer with the model API's headers and body
shape, and run in a thread of the calibrating process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator


def _answer(content: bytes) -> bytes:
    """An HTTP answer with uvicorn's headers, as the model API sends them."""
    return (
        b"HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\nserver: uvicorn\r\n"
        b"content-length: %d\r\ncontent-type: application/json\r\n"
        b"x-request-id: 0000000000-0\r\n\r\n%s" % (len(content), content)
    )


class StubProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive with pipelining: one canned answer per request, body skipped."""

    def __init__(self, ready: bytes, predict: bytes) -> None:
        self.ready, self.predict, self.buffer = ready, predict, b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = 0
            if (at := head.find(b"content-length:")) >= 0:
                length = int(head[at + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.ready if head.startswith(b"get") else self.predict)


@contextlib.contextmanager
def stub_api(batch_size: int) -> Iterator[str]:
    """A model API stand-in on 127.0.0.1 in a thread of this process, answering at once; its URL."""
    predictions = [{"prediction": 0, "score": 0.5}] * batch_size
    body = {"model": "calibration", "digest": "0" * 64, "predictions": predictions}
    answers = _answer(b'{"ready":true}'), _answer(json.dumps(body).encode())
    loop, sock = asyncio.new_event_loop(), socket.socket()
    sock.bind(("127.0.0.1", 0))
    serving = loop.create_server(lambda: StubProtocol(*answers), sock=sock, backlog=4096)
    server = loop.run_until_complete(serving)
    thread = threading.Thread(target=loop.run_forever, name="locust-calibration", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
