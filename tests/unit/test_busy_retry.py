"""The embedded server replays a change Prefect refused as busy (503), and only that."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from fearless.platform import busy_retry
from fearless.platform.busy_retry import BusyRetry


def busy_app(busy_times: int):
    """Answers 503 (as Prefect does on SQLITE_BUSY) the first `busy_times` calls; records bodies."""
    bodies: list[bytes] = []

    async def endpoint(request):
        bodies.append(await request.body())
        if len(bodies) <= busy_times:
            raise Busy("database is locked")
        return JSONResponse({"calls": len(bodies)})

    async def busy(request, exc):
        return JSONResponse({"exception_message": "Service Unavailable"}, status_code=503)

    # As Prefect does: its API mounted (a router writes into the scope it is given), and the
    # error answered 503 by a handler of the app, which Starlette then raises again.
    api = Mount("/api", routes=[Route("/thing", endpoint, methods=["GET", "POST"])])
    app = Starlette(routes=[api], exception_handlers={Exception: busy})
    return BusyRetry(app), bodies


class Busy(Exception):
    """What SQLite raises when another write holds the database."""


def call(app, method: str, body: bytes = b"") -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, "/api/thing", content=body)

    return asyncio.run(go())


def test_a_change_refused_as_busy_is_replayed_with_its_body(monkeypatch):
    monkeypatch.setattr(busy_retry, "FIRST_BACKOFF_S", 0.001)
    app, bodies = busy_app(busy_times=2)
    answer = call(app, "POST", b'{"run_input": {"approve": true}}')
    assert answer.status_code == 200 and answer.json() == {"calls": 3}
    assert bodies == [b'{"run_input": {"approve": true}}'] * 3


def test_a_server_busy_for_good_answers_503_after_the_last_attempt(monkeypatch):
    monkeypatch.setattr(busy_retry, "FIRST_BACKOFF_S", 0.001)
    app, bodies = busy_app(busy_times=100)
    answer = call(app, "POST", b"{}")
    assert answer.status_code == 503 and len(bodies) == busy_retry.ATTEMPTS


def test_reads_and_large_bodies_are_not_replayed(monkeypatch):
    monkeypatch.setattr(busy_retry, "FIRST_BACKOFF_S", 0.001)
    app, bodies = busy_app(busy_times=1)
    assert call(app, "GET").status_code == 503 and len(bodies) == 1
    app, bodies = busy_app(busy_times=1)
    large = b"x" * (busy_retry.MAX_BODY_BYTES + 10)
    assert call(app, "POST", large).status_code == 503
    assert bodies == [large]  # passed through whole, once
