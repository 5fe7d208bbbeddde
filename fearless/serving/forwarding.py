"""Forward a sample of the predictions answered to a shadow model API.

A bake compares the new production version with the previous one on the same live records
(`fearless.production.shadow` pairs their inference-log rows by request id and inputs). The
local nginx front mirrors requests; an AWS load balancer cannot, so each production model API
forwards them itself: once a POST /predict (or OIP infer) request is answered 200, the same
body goes to `FEARLESS_SHADOW_URL` with `X-Request-ID` set to the id of this API's own log
rows and `X-Fearless-Shadow: 1`. A request carrying that header is never forwarded again: no
chains, and a shadow started with the same settings cannot loop to itself.

`FEARLESS_SHADOW_SAMPLE` (0 to 1, default 1) picks requests by their id (`sampled`), so which
ones go is predictable. Forwarding never delays or changes the client's answer. Outcomes, in
`fearless_shadow_forwards_total{outcome}` (requests not sampled are not counted):

    sent     the shadow answered 2xx
    failed   it answered otherwise, timed out, or could not be reached
    dropped  MAX_IN_FLIGHT forwards were already under way (dropped, never queued)
    skipped  less than BACKOFF_S after the shadow could not be reached
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter
from starlette.background import BackgroundTask
from starlette.requests import Request

from fearless.serving.oip_codec import HEADER_LENGTH

URL_VARIABLE = "FEARLESS_SHADOW_URL"
SAMPLE_VARIABLE = "FEARLESS_SHADOW_SAMPLE"
SHADOW_HEADER = b"x-fearless-shadow"
OUTCOMES = ("sent", "failed", "dropped", "skipped")
MAX_IN_FLIGHT = 64
TIMEOUT_S = 2.0
BACKOFF_S = 5.0
KEEPALIVE_S = 4.0  # below uvicorn's 5 s: an idle connection is let go here before the shadow does
_KEPT = (b"content-type", HEADER_LENGTH.encode())  # what the shadow needs to read the body


@dataclass(frozen=True)
class ShadowConfig:
    """The shadow's base URL, and the fraction of requests sent there (picked by id)."""

    url: str
    sample: float = 1.0


def shadow_config(environ: Mapping[str, str]) -> ShadowConfig | None:
    """Where to forward, read from `environ`; None when FEARLESS_SHADOW_URL is unset or empty.
    ValueError naming the variable and its value when either cannot be used."""
    raw = environ.get(SAMPLE_VARIABLE, "").strip()
    sample = _fraction(raw) if raw else 1.0
    url = environ.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    if not _base_url(url):
        raise ValueError(
            f"{URL_VARIABLE}={url!r} is not an http(s) base URL, such as "
            "http://credit-shadow.fearless.internal:8080"
        )
    return ShadowConfig(url, sample)


def _base_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError: not a number, or out of range
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and port != 0
        and not (parts.query or parts.fragment or any(c.isspace() for c in url))
    )


def _fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise ValueError(f"{SAMPLE_VARIABLE}={raw!r} is not a fraction of requests from 0 to 1")
    return value


def sampled(request_id: str, fraction: float) -> bool:
    """Whether the request `request_id` is forwarded: the 8-byte BLAKE2b digest of the id's
    UTF-8 bytes, read as a big-endian number and scaled to [0, 1), is below `fraction`. The
    same id gets the same answer everywhere."""
    # Not CRC-32: it is linear, so ids differing only in a counter (as this API's own do)
    # would be kept at a rate set by their common prefix rather than by `fraction`.
    digest = hashlib.blake2b(request_id.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < fraction * 2**64


class Forwarder:
    """Forwards requests in background tasks of the app's event loop, over one client kept
    for the app's lifetime (`open` and `close` in its lifespan)."""

    def __init__(
        self,
        config: ShadowConfig,
        counter: Counter,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.outcomes = {outcome: counter.labels(outcome) for outcome in OUTCOMES}
        self.transport, self.clock = transport, clock
        self.client: httpx.AsyncClient | None = None
        self.in_flight: set[asyncio.Task] = set()
        self.paused_until = -math.inf

    def open(self) -> None:
        self.client = httpx.AsyncClient(
            base_url=self.config.url,
            timeout=TIMEOUT_S,
            limits=httpx.Limits(
                max_connections=MAX_IN_FLIGHT,
                max_keepalive_connections=MAX_IN_FLIGHT,
                keepalive_expiry=KEEPALIVE_S,
            ),
            transport=self.transport,
            trust_env=False,  # the shadow is a neighbour: no proxy or .netrc applies
        )

    async def close(self) -> None:
        """Cancel the forwards still under way (nobody waits for them), close the client."""
        for task in self.in_flight:
            task.cancel()
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def forward(self, scope, body: bytes, request_id: str) -> None:
        """Start forwarding a request answered 200 (its ASGI scope and body) and return at
        once; nothing when it came from another model API or is not in the sample."""
        headers = {}
        for name, value in scope["headers"]:
            if name == SHADOW_HEADER:
                return
            if name in _KEPT:
                headers[name] = value
        if self.client is None or not sampled(request_id, self.config.sample):
            return
        if self.clock() < self.paused_until:
            self.outcomes["skipped"].inc()
            return
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            self.outcomes["dropped"].inc()
            return
        headers[b"x-request-id"] = request_id.encode("latin-1", "replace")
        headers[SHADOW_HEADER] = b"1"
        task = asyncio.get_running_loop().create_task(self._send(scope["path"], body, headers))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _send(self, path: str, body: bytes, headers: dict[bytes, bytes]) -> None:
        try:
            response = await self.client.post(path, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout):  # refused, no route, no DNS name
            self.paused_until = self.clock() + BACKOFF_S
            outcome = "failed"
        except Exception:  # noqa: BLE001 (a timeout, a reset: the client has its answer)
            outcome = "failed"
        else:
            outcome = "sent" if response.is_success else "failed"
        self.outcomes[outcome].inc()


def forward_after(request: Request, body: bytes, request_id: str) -> BackgroundTask | None:
    """For a route answering 200: the forward of its request, run once the answer is sent
    (None when this API forwards nothing)."""
    forwarder: Forwarder | None = request.app.state.forwarder
    if forwarder is None:
        return None
    return BackgroundTask(forwarder.forward, request.scope, body, request_id)
