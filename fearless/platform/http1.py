"""One kept-alive HTTP/1.1 connection over a socket: what the read-only commands need to ask
the Prefect server, and the load generator's users the model API, and nothing more.

`http.client` imports the `email` package and `ssl` (a sixth of `fearless status`'s time);
this reads a status line, headers and a body (by Content-Length, chunked, or to the end), and
imports `ssl` only for an https URL.
"""

from __future__ import annotations

import socket
from typing import Self
from urllib.parse import SplitResult

MAX_HEADER_LINES = 200
MAX_HEAD_BYTES = 65536
RECV_BYTES = 65536


class ConnectionLost(ConnectionResetError):
    """The server closed the connection before answering (a kept-alive one it timed out)."""


class Connection:
    def __init__(self, url: SplitResult, timeout_s: float) -> None:
        """`url`: where to connect (`urllib.parse.urlsplit` of an http or https URL)."""
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {url.geturl()!r}")
        self.tls = url.scheme == "https"
        self.host, self.port = url.hostname, url.port or (443 if self.tls else 80)
        self.host_header = url.netloc.rpartition("@")[2]
        self.timeout_s = timeout_s
        self.sock: socket.socket | None = None
        # What was received and not yet parsed. Read in blocks and parsed here, not through a
        # buffered reader line by line: a small answer is one recv, its headers one split.
        self.buffer = bytearray()

    def _open(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        if self.tls:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock
        self.buffer.clear()

    def request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        """(status, body) of one request; an OSError when it cannot be made or read."""
        if self.sock is None:
            self._open()
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            sent = self.sock.send(data)  # a small request goes in one send, without sendall's
            if sent < len(data):  # bookkeeping (under gevent, a timer and a getsockopt)
                self.sock.sendall(memoryview(data)[sent:])
            return self._answer(method)
        except BaseException:
            self.close()
            raise

    def _answer(self, method: str) -> tuple[int, bytes]:
        head = self._head()
        status_line, *header_lines = head.split(b"\n")
        version, status, *_ = status_line.decode("latin-1").split(" ", 2)
        if not version.startswith("HTTP/1.") or not status.strip().isdigit():
            raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
        if len(header_lines) > MAX_HEADER_LINES:
            raise ConnectionError(f"an answer with more than {MAX_HEADER_LINES} header lines")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        code = int(status)
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            body = b""
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            body = self._chunks()
        elif b"content-length" in headers:
            body = self._exactly(int(headers[b"content-length"]))
        else:
            body = self._to_the_end()
            headers[b"connection"] = b"close"
        keep = headers.get(b"connection", b"").lower()
        if keep == b"close" or (version == "HTTP/1.0" and keep != b"keep-alive"):
            self.close()
        return code, body

    def _receive(self) -> bool:
        """Some more of the answer into the buffer; False at the end of the stream."""
        block = self.sock.recv(RECV_BYTES)
        self.buffer += block
        return bool(block)

    def _head(self) -> bytes:
        """The status line and headers, up to the empty line (CRLF, or a bare LF, endings)."""
        searched = 0
        while True:
            end = self.buffer.find(b"\n\r\n", searched)
            bare = self.buffer.find(b"\n\n", searched)
            if end < 0 or 0 <= bare < end:
                end, blank = bare, 2
            else:
                blank = 3
            if end > MAX_HEAD_BYTES or (end < 0 and len(self.buffer) > MAX_HEAD_BYTES):
                raise ConnectionError(f"an answer's headers longer than {MAX_HEAD_BYTES} bytes")
            if end >= 0:
                head = bytes(self.buffer[:end])
                del self.buffer[: end + blank]
                return head
            searched = max(0, len(self.buffer) - 2)
            if not self._receive():
                if self.buffer:
                    raise ConnectionLost("the answer ended inside its headers")
                raise ConnectionLost("the server closed the connection before answering")

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._receive():
                raise ConnectionLost(f"the answer ended after {len(self.buffer)} of {size} bytes")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def _line(self) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\n", searched)) < 0:
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise ConnectionError(f"a chunk line longer than {MAX_HEAD_BYTES} bytes")
            searched = len(self.buffer)
            if not self._receive():
                raise ConnectionLost("the answer ended inside its chunked body")
        line = bytes(self.buffer[:end]).rstrip(b"\r")
        del self.buffer[: end + 1]
        return line

    def _chunks(self) -> bytes:
        parts = []
        while True:
            size = int(self._line().split(b";")[0].strip(), 16)
            if size == 0:
                break
            parts.append(self._exactly(size))
            self._line()
        while self._line().strip():  # trailers, then the blank line
            pass
        return b"".join(parts)

    def _to_the_end(self) -> bytes:
        while self._receive():
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buffer.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
