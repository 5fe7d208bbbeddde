"""The Locust users' HTTP client: one kept-alive connection per user, each request reported to
Locust's statistics as its own HTTP users report theirs.

Why not Locust's FastHttpUser: its client (geventhttpclient, with Locust's request wrapper on
top) cost Locust 132-136 µs of CPU a request against an API that answers at once, this one
46-62 µs (and 260-309 against 126-129 µs paced at 2,000 req/s), on this project's 2-core
machine. On a laptop the generator shares its cores with the API it measures, so what it
spends the API loses. The HTTP here is the platform's own small client
(`fearless.platform.http1`: a status line, headers, a body by length or by chunks), which under
Locust runs on gevent's patched sockets; what this module adds is Locust's bookkeeping.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from fearless.platform.http1 import Connection

TIMEOUT_S = 60.0  # to connect and for each read, as FastHttpUser's defaults


class HttpFailure(Exception):
    """An answer with another status than 200: a failed request in Locust's statistics."""


class ApiClient:
    """POSTs to one base URL over one kept-alive connection, each reported to `request_event`
    (Locust's `events.request`); a connection that fails is opened again by the next request."""

    def __init__(self, base_url: str, request_event, timeout_s: float = TIMEOUT_S) -> None:
        self.base = base_url.rstrip("/")
        self.connection = Connection(urlsplit(self.base), timeout_s)
        self.request_event = request_event

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        """The answer's status (0 when none came); a failure is reported, never raised."""
        start_time, started = time.time(), time.perf_counter()
        status, length, error = 0, 0, None
        try:
            status, answer = self.connection.request("POST", path, body, headers)
            length = len(answer)
            if status != 200:
                error = HttpFailure(f"HTTP {status}")
        except (OSError, ValueError) as exc:  # refused, reset, timed out, or not HTTP
            error = exc
        self.request_event.fire(
            request_type="POST",
            name=path,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            response=None,
            context={},
            exception=error,
            start_time=start_time,
            url=self.base + path,
        )
        return status

    def close(self) -> None:
        self.connection.close()
