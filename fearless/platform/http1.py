"""One kept-alive HTTP/1.1 connection over a socket: what the read-only commands need to ask
the Prefect server and nothing more.

`http.client` imports the `email` package and `ssl` (a sixth of `fearless status`'s time);
this reads a status line, headers and a body (by Content-Length, chunked, or to the end), and
imports `ssl` only for an https URL.
"""

from __future__ import annotations

import socket
from typing import Self
from urllib.parse import SplitResult

MAX_HEADER_LINES = 200


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
        self.reader = None

    def _open(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        if self.tls:
            import ssl

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock, self.reader = sock, sock.makefile("rb")

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
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b""))
            return self._answer(method)
        except BaseException:
            self.close()
            raise

    def _answer(self, method: str) -> tuple[int, bytes]:
        status_line = self.reader.readline(65537)
        if not status_line:
            raise ConnectionLost("the server closed the connection before answering")
        version, status, *_ = status_line.decode("latin-1").split(" ", 2)
        if not version.startswith("HTTP/1.") or not status.strip().isdigit():
            raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
        headers = {}
        for _ in range(MAX_HEADER_LINES):
            line = self.reader.readline(65537).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(status)
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._chunks()
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            body = self.reader.read()
            headers["connection"] = "close"
        keep = headers.get("connection", "").lower()
        if keep == "close" or (version == "HTTP/1.0" and keep != "keep-alive"):
            self.close()
        return code, body

    def _exactly(self, size: int) -> bytes:
        data = self.reader.read(size)
        if len(data) != size:
            raise ConnectionLost(f"the answer ended after {len(data)} of {size} bytes")
        return data

    def _chunks(self) -> bytes:
        parts = []
        while True:
            line = self.reader.readline(1024)
            if not line:
                raise ConnectionLost("the answer ended inside its chunked body")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            parts.append(self._exactly(size))
            self.reader.readline(1024)
        while self.reader.readline(65537).strip():  # trailers, then the blank line
            pass
        return b"".join(parts)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.sock is not None:
            self.sock.close()
        self.sock = self.reader = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
