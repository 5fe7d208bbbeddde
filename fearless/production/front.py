"""The production front: one fixed address per model, forwarding to its current model API.

Clients keep one URL (and their keep-alive connections) across promotions. A switch only
changes where the front sends new requests; requests already in flight finish on the old
upstream, and the front counts them so the old one is stopped only once they have.

    python -m fearless.production.front --port N [--host H] [--upstream URL]

Admin (from loopback only): `GET /-/front` (upstream, in-flight counts),
`PUT /-/front/upstream {"url": ...}` (switch).
"""

from __future__ import annotations

import argparse
from collections import Counter
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ADMIN_PATH = "/-/front"
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
# Headers that belong to one connection, not to the request or response being forwarded.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
# Idle upstream connections are dropped before uvicorn's 5 s keep-alive timeout closes them,
# so a request is never sent on a connection the upstream is closing.
UPSTREAM_LIMITS = httpx.Limits(max_connections=200, keepalive_expiry=2.0)


class Upstreams:
    """Where requests go now, and how many are still in flight on each upstream."""

    def __init__(self, current: str | None) -> None:
        self.current = current
        self.in_flight: Counter[str] = Counter()


def _forwarded(headers) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]


def create_front(upstream: str | None = None, timeout_s: float = 60.0) -> Starlette:
    """The front's ASGI app, forwarding to `upstream` until told another."""
    state = Upstreams(upstream)
    client = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(retries=1, limits=UPSTREAM_LIMITS),
        timeout=timeout_s,
    )

    async def forward(request: Request) -> Response:
        url = state.current  # read and counted with no await between: atomic for a switch
        if url is None:
            return JSONResponse({"detail": "no model API behind this front yet"}, 503)
        state.in_flight[url] += 1
        try:
            body = await request.body()
            outgoing = client.build_request(
                request.method,
                httpx.URL(url + request.url.path, query=request.url.query.encode()),
                headers=_forwarded(request.headers),
                content=body,
            )
            answer = await client.send(outgoing, stream=True)
            try:
                content = b"".join([chunk async for chunk in answer.aiter_raw()])
            finally:
                await answer.aclose()
        except httpx.HTTPError as exc:
            return JSONResponse({"detail": f"upstream {url}: {exc!r}"}, 502)
        finally:
            state.in_flight[url] -= 1
        response = Response(content, status_code=answer.status_code)
        response.raw_headers = [*_forwarded(answer.headers), *_length(response)]
        return response

    def admin_only(request: Request) -> JSONResponse | None:
        host = request.client.host if request.client else ""
        return None if host in LOOPBACK else JSONResponse({"detail": "loopback only"}, 403)

    async def describe(request: Request) -> JSONResponse:
        if refused := admin_only(request):
            return refused
        in_flight = {u: n for u, n in state.in_flight.items() if n}
        return JSONResponse({"upstream": state.current, "in_flight": in_flight})

    async def switch(request: Request) -> JSONResponse:
        if refused := admin_only(request):
            return refused
        url = (await request.json()).get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return JSONResponse({"detail": f"expected {{'url': 'http://...'}}, got {url!r}"}, 422)
        previous, state.current = state.current, url.rstrip("/")
        return JSONResponse({"upstream": state.current, "previous": previous})

    @asynccontextmanager
    async def lifespan(app):
        yield
        await client.aclose()

    routes = [
        Route(ADMIN_PATH, describe, methods=["GET"]),
        Route(f"{ADMIN_PATH}/upstream", switch, methods=["PUT"]),
        Route("/{path:path}", forward, methods=METHODS),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _length(response: Response) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in response.raw_headers if k == b"content-length"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fearless.production.front")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", help="the model API to forward to at first")
    args = parser.parse_args(argv)

    import uvicorn

    app = create_front(args.upstream.rstrip("/") if args.upstream else None)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
