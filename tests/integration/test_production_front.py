"""The production front over real HTTP: a switch leaves slow requests finishing on the old
upstream (counted as in flight until they do), and the admin endpoint refuses bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fearless.platform.processes import free_port
from fearless.production.front import ADMIN_PATH, create_front


def upstream_app(name: str, delay_s: float) -> Starlette:
    async def answer(request):
        await asyncio.sleep(delay_s if request.query_params.get("slow") else 0)
        return PlainTextResponse(
            f"{name} {request.method} {request.url.path}", headers={"x-v": name}
        )

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


@contextmanager
def serving(app) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def in_flight(front: str) -> dict[str, int]:
    return httpx.get(f"{front}{ADMIN_PATH}").json()["in_flight"]


def test_a_switch_lets_requests_in_flight_finish_on_the_old_upstream():
    with (
        serving(upstream_app("old", 1.5)) as old,
        serving(upstream_app("new", 0)) as new,
        serving(create_front(old)) as front,
    ):
        slow: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: slow.append(httpx.post(f"{front}/predict?slow=1", content=b"{}"))
        )
        request.start()
        deadline = time.monotonic() + 5
        while in_flight(front) != {old: 1} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert in_flight(front) == {old: 1}
        switched = httpx.put(f"{front}{ADMIN_PATH}/upstream", json={"url": new}).json()
        assert switched == {"upstream": new, "previous": old}
        fresh = httpx.post(f"{front}/predict?x=1", content=b"{}")
        assert fresh.text == "new POST /predict" and fresh.headers["x-v"] == "new"
        assert in_flight(front) == {old: 1}  # the slow one still runs on the old upstream
        request.join(timeout=10)
        assert slow[0].status_code == 200 and slow[0].text == "old POST /predict"
        assert in_flight(front) == {}


def test_no_upstream_a_dead_upstream_and_a_bad_switch_are_clear_errors():
    with serving(create_front(None)) as front:
        assert httpx.get(f"{front}/ready").status_code == 503
        bad = httpx.put(f"{front}{ADMIN_PATH}/upstream", json={"url": "nowhere"})
        assert bad.status_code == 422 and "nowhere" in bad.text
        dead = f"http://127.0.0.1:{free_port()}"
        assert httpx.put(f"{front}{ADMIN_PATH}/upstream", json={"url": dead}).status_code == 200
        answer = httpx.get(f"{front}/ready")
        assert answer.status_code == 502 and dead in answer.text
        assert in_flight(front) == {}
