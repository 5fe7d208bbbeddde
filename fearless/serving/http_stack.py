"""The HTTP server stack the model API runs on: uvicorn on httptools and uvloop, one write a
response.

uvicorn alone parses HTTP in Python (h11) on asyncio's own loop; its `standard` extra adds the
C parser (httptools) and loop (uvloop) that make it fast, and it picks them only when they
are installed. So every bundle pins them with the rest of the runtime
(`fearless.bundles.bundle.RUNTIME_PACKAGES`), and its image serves on the stack the load test
measured.

uvicorn writes a response's head and body in two writes, two syscalls; on loopback or a
kept-alive upstream each wakes the client, which then reads half an answer. The protocol here
holds the head until the body's write, in the same turn of the loop, and sends both in one
(a head alone, as a streamed response's, goes at the end of that turn). Measured with
`bench/loadgen.py`, 3 runs each way alternated: the clients' CPU a request answered falls,
Locust's from 60 to 55 µs and wrk's from 22 to 20 µs (medians of 6 rounds); the API's own
req/s, and the latency at a fixed 500 req/s, are the same within this machine's noise.
"""

from __future__ import annotations

import asyncio
from typing import Any


class HeadJoiningTransport:
    """A transport whose lone write waits for the next one, to the end of the loop's turn.

    Everything but `write` and `close` is the wrapped transport's own (flow control, extra
    info, `abort`, which drops a held write as it drops the transport's buffer)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._held = None
        self._transport.writelines((held, data))  # one syscall (writev), no copy

    def _flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def server_options() -> dict[str, Any]:
    """`uvicorn.run`'s `http` and `loop`: the joined-writes protocol on httptools and uvloop
    where installed; uvicorn's own choice (h11, asyncio) where not, and a line that says so."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        print("httptools is not installed: serving on h11, several times slower (install "
              "httptools and uvloop)", flush=True)  # fmt: skip
        return {"http": "auto", "loop": "auto"}

    class JoinedWritesProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            loop = asyncio.get_running_loop()
            super().connection_made(HeadJoiningTransport(transport, loop))  # type: ignore[arg-type]

    return {"http": JoinedWritesProtocol, "loop": "auto"}
