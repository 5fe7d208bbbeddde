"""The read-only commands' HTTP/1.1 client (`fearless.platform.http1`) against a socket that
answers as servers do: by Content-Length, chunked, to the end, and closing a kept-alive
connection between two calls (`PrefectApi` asks again on a new one)."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from fearless.platform.http1 import Connection, ConnectionLost
from fearless.platform.rest import PrefectApi

LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: application/json\r\n\r\n[1,2,3]"
CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'4\r\n["ab\r\n3;ext=1\r\n",1\r\n1\r\n]\r\n0\r\nX-Trailer: t\r\n\r\n'
)
TO_THE_END = b'HTTP/1.0 404 Not Found\r\n\r\n{"detail": "no"}'


def serve(answers: list[bytes | None]):
    """A server that answers each request on a connection with the next of `answers` (None:
    close the connection without answering); the requests it read, and its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def run() -> None:
        pending = list(answers)
        while pending:
            conn, _ = listener.accept()
            with conn:
                while pending:
                    request = conn.recv(65536)
                    if not request:
                        break
                    seen.append(request)
                    answer = pending.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if answer is TO_THE_END:
                        break
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return seen, f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_bodies_by_length_chunked_and_to_the_end_on_one_kept_alive_connection():
    seen, url = serve([LENGTH, CHUNKED, TO_THE_END])
    with Connection(urlsplit(url), timeout_s=5) as conn:
        assert conn.request("GET", "/a", None, {"Accept": "application/json"}) == (200, b"[1,2,3]")
        assert conn.request("POST", "/b", b"{}", {}) == (201, b'["ab",1]')
        assert conn.request("GET", "/c", None, {}) == (404, b'{"detail": "no"}')
        assert conn.sock is None  # closed: the server said HTTP/1.0 and sent no length
    first, second = seen[0].decode(), seen[1].decode()
    assert (
        first.startswith("GET /a HTTP/1.1\r\nHost: 127.0.0.1:")
        and "Accept: application/json" in first
    )
    assert second.startswith("POST /b HTTP/1.1") and second.endswith("Content-Length: 2\r\n\r\n{}")


def test_a_connection_closed_between_calls_is_asked_again_on_a_new_one():
    seen, url = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", None, LENGTH])
    with PrefectApi(url + "/api") as api:
        assert api.get("health") == {}
        assert api.get("health") == [1, 2, 3]
    assert len(seen) == 3


def test_a_lost_answer_is_an_os_error():
    _, url = serve([None])
    with Connection(urlsplit(url), timeout_s=5) as conn, pytest.raises(ConnectionLost):
        conn.request("GET", "/", None, {})
    _, truncated = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
    with Connection(urlsplit(truncated), timeout_s=5) as conn, pytest.raises(OSError):
        conn.request("GET", "/", None, {})


def serve_in_pieces(answer: bytes, piece: int):
    """A server that sends `answer` to one request `piece` bytes at a time, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.recv(65536)
            for start in range(0, len(answer), piece):
                conn.sendall(answer[start : start + piece])
                time.sleep(0.001)
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize("answer", [LENGTH, CHUNKED], ids=["by-length", "chunked"])
def test_an_answer_that_arrives_a_few_bytes_at_a_time_is_read_whole(answer):
    with Connection(urlsplit(serve_in_pieces(answer, 3)), timeout_s=5) as conn:
        assert conn.request("GET", "/", None, {})[1] in (b"[1,2,3]", b'["ab",1]')


def test_an_answer_with_bare_line_feeds_is_read():
    bare = b"HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\n{}"
    _, url = serve([bare])
    with Connection(urlsplit(url), timeout_s=5) as conn:
        assert conn.request("GET", "/", None, {}) == (200, b"{}")
        assert conn.sock is None  # it said Connection: close


def test_headers_past_the_limit_are_refused_not_read_forever():
    endless = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
    _, url = serve([endless])
    with Connection(urlsplit(url), timeout_s=5) as conn, pytest.raises(ConnectionError):
        conn.request("GET", "/", None, {})
