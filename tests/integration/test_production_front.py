"""The production front (a real nginx) over real HTTP: a switch leaves requests in flight
finishing on the old slot while new ones go to the new; bodies are bounded; the access log
counts what one upstream answered; a front that dies is started again."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psutil
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from fearless.platform import processes
from fearless.production.front_log import AccessLog
from fearless.production.fronts import Front, Fronts
from fearless.production.hold import HoldServer, wait_for_port


def upstream_app(name: str, delay_s: float = 0.0, seen: list[str] | None = None) -> Starlette:
    async def answer(request):
        if seen is not None:
            seen.append(request.url.path)
        await asyncio.sleep(delay_s if request.query_params.get("slow") else 0)
        status = 500 if request.query_params.get("fail") else 200
        return PlainTextResponse(f"{name} {request.method} {request.url.path}", status)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


@contextmanager
def serving(app, port: int) -> Iterator[str]:
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


def nginx_in_group(pgid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "status"]):
        try:
            alive = proc.info["status"] != psutil.STATUS_ZOMBIE
            if alive and proc.info["name"] == "nginx" and os.getpgid(proc.pid) == pgid:
                found.append(proc.pid)
        except (psutil.Error, ProcessLookupError):
            pass
    return found


@pytest.fixture
def fronts(tmp_path) -> Iterator[Fronts]:
    fronts = Fronts(tmp_path / "fronts")
    try:
        yield fronts
    finally:
        fronts.stop("credit")


def start_front(fronts: Fronts, slot: str = "blue") -> str:
    fronts.nginx("credit").point(slot)
    with fronts.locked("credit"):
        return fronts.running("credit").url


def test_a_switch_lets_requests_in_flight_finish_on_the_old_slot(fronts):
    slots = fronts.get("credit").slots
    seen: list[str] = []
    with (
        serving(upstream_app("old", 1.5, seen), slots["blue"]),
        serving(upstream_app("new"), slots["green"]),
    ):
        front = start_front(fronts, "blue")
        assert httpx.post(f"{front}/predict").text == "old POST /predict"
        slow: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: slow.append(httpx.post(f"{front}/predict?slow=1", content=b"{}"))
        )
        thread.start()
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # until the old slot has it (a busy machine may take a while)
        fronts.nginx("credit").point("green")
        assert httpx.post(f"{front}/predict?x=1", content=b"{}").text == "new POST /predict"
        thread.join(timeout=10)
        assert [(r.status_code, r.text) for r in slow] == [(200, "old POST /predict")]


def test_bodies_are_bounded_and_an_empty_slot_is_a_502(fronts):
    seen: list[str] = []
    with serving(upstream_app("old", seen=seen), fronts.get("credit").slots["blue"]):
        front = start_front(fronts)
        too_big = httpx.post(f"{front}/predict", content=b"x" * (3 * 1024 * 1024))
        assert too_big.status_code == 413 and seen == []  # refused before the model API
        assert httpx.post(f"{front}/predict", content=b"x" * (1024 * 1024)).status_code == 200
        fronts.nginx("credit").point("green")  # nothing listens there
        assert httpx.post(f"{front}/predict").status_code == 502


def test_the_access_log_counts_what_one_upstream_answered_while_on(fronts):
    slots = fronts.get("credit").slots
    with serving(upstream_app("old"), slots["blue"]):
        front = start_front(fronts)
        nginx = fronts.nginx("credit")
        httpx.post(f"{front}/predict")  # before the window: not logged
        log = AccessLog(nginx.access_log, f"127.0.0.1:{slots['blue']}", reopen=lambda: None)
        nginx.log_requests(True)
        for query in ["", "", "", "?fail=1", "", "?fail=1", ""]:
            httpx.post(f"{front}/predict{query}")
        httpx.get(f"{front}/ready")  # not a prediction: not counted
        nginx.point("green")
        httpx.post(f"{front}/predict")  # another upstream (a 502): not this one's
        deadline = time.monotonic() + 5
        while (seen := log.scrape()).requests < 7 and time.monotonic() < deadline:
            time.sleep(0.1)  # nginx flushes its log buffer every 500 ms
        nginx.log_requests(False)
        assert (seen.requests, seen.server_errors) == (7, 2)
        assert seen.buckets[-1][1] == 7
        log.close()
        assert not (nginx.flags / "log").exists()


def recording_app(name: str, seen: list[tuple[str, str, bytes]]) -> Starlette:
    async def answer(request):
        seen.append(
            (request.url.path, request.headers.get("x-request-id", ""), await request.body())
        )
        return PlainTextResponse(name)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


def test_while_mirroring_the_idle_slot_gets_a_copy_of_each_request_with_the_same_id(fronts):
    slots = fronts.get("credit").slots
    live: list[tuple[str, str, bytes]] = []
    shadow: list[tuple[str, str, bytes]] = []
    with (
        serving(recording_app("live", live), slots["green"]),
        serving(recording_app("shadow", shadow), slots["blue"]),
    ):
        front = start_front(fronts, "green")
        nginx = fronts.nginx("credit")
        assert httpx.post(f"{front}/predict", content=b"0").text == "live"
        nginx.mirror(True)
        answers = [httpx.post(f"{front}/predict", content=str(i).encode()) for i in range(1, 4)]
        given = httpx.post(f"{front}/predict", content=b"4", headers={"X-Request-ID": "mine"})
        nginx.mirror(False)
        assert httpx.post(f"{front}/predict", content=b"5").text == "live"
        time.sleep(0.2)
    assert [a.text for a in [*answers, given]] == ["live"] * 4  # the shadow's never reach one
    assert [body for _, _, body in live] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    assert shadow == live[1:5]  # same path, id and body; only while mirroring
    ids = [request for _, request, _ in live]
    assert ids[4] == "mine" and len(set(ids)) == 6 and all(len(i) == 32 for i in ids[:4])


def test_a_request_no_model_api_can_take_is_held_until_one_listens_and_not_retried_after(fronts):
    slots, hold_port = fronts.get("credit").slots, fronts.get("credit").hold
    hold = HoldServer(hold_port, lambda slot: slots.get(slot), hold_s=20)
    try:
        front = start_front(fronts)
        answers: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{front}/predict?fail=1", content=b"{}", timeout=30)
            )
        )
        thread.start()  # nothing listens on the slot: the hold server keeps it
        time.sleep(1.0)
        seen: list[str] = []
        with serving(upstream_app("late", seen=seen), slots["blue"]):
            thread.join(timeout=20)
            # The model API's own 500 is its answer: passed on once, never retried.
            assert [(a.status_code, a.text) for a in answers] == [(500, "late POST /predict")]
            assert seen == ["/predict"]
    finally:
        hold.close()
    assert wait_for_port(hold_port, 0) is False


def test_a_connection_dropped_unanswered_by_a_dying_api_is_held_for_the_next_one(fronts):
    """A killed model API's socket can take a connection and drop it unanswered as its process
    exits: the hold server waits for the next one instead of answering 502."""
    slots, hold_port = fronts.get("credit").slots, fronts.get("credit").hold
    hold = HoldServer(hold_port, lambda slot: slots.get(slot), hold_s=20)
    dying = socket.create_server(("127.0.0.1", slots["blue"]))
    dropped = threading.Event()

    def drop_one_then_exit() -> None:
        conn, _ = dying.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # a reset, no answer
        dying.close()
        dropped.set()

    threading.Thread(target=drop_one_then_exit, daemon=True).start()
    answers: list[httpx.Response] = []
    asked = threading.Thread(
        target=lambda: answers.append(
            httpx.post(
                f"http://127.0.0.1:{hold_port}/predict",
                content=b"{}",
                headers={"X-Fearless-Slot": "blue"},
                timeout=30,
            )
        )
    )
    try:
        asked.start()
        assert dropped.wait(10)
        time.sleep(0.3)  # the slot is empty a while, as while the supervisor restarts it
        seen: list[str] = []
        with serving(upstream_app("next", seen=seen), slots["blue"]):
            asked.join(timeout=20)
            assert [(a.status_code, a.text) for a in answers] == [(200, "next POST /predict")]
            assert seen == ["/predict"]
    finally:
        hold.close()


def test_a_front_that_dies_is_started_again_on_the_same_address(fronts):
    with serving(upstream_app("old"), fronts.get("credit").slots["blue"]):
        front = start_front(fronts)
        first = fronts.get("credit").handle
        os.kill(first.pid, signal.SIGKILL)
        while processes.is_alive(first):
            time.sleep(0.05)
        assert fronts.keep_up() == {"credit": "restarted"}
        assert not nginx_in_group(first.pid)  # the dead master's workers too
        assert fronts.get("credit").url == front
        assert httpx.post(f"{front}/predict").text == "old POST /predict"
        assert fronts.keep_up() == {}
        again = fronts.get("credit").handle
    assert fronts.stop("credit") and not processes.is_alive(again)
    assert fronts.get("credit").handle is None and fronts.keep_up() == {}


def test_a_slot_taken_while_idle_moves_to_a_free_port_and_the_front_keeps_serving(fronts):
    before = fronts.get("credit")
    with serving(upstream_app("old"), before.slots["blue"]):
        front = start_front(fronts)
        master = fronts.get("credit").handle
        with serving(upstream_app("squatter"), before.slots["green"]):
            port = fronts.free_slot("credit", "green")
        after = fronts.get("credit")
        assert port == after.slots["green"] not in (before.slots["green"], after.port)
        assert after.handle == master and processes.is_alive(master)  # reloaded, not restarted
        assert httpx.post(f"{front}/predict").text == "old POST /predict"
        with serving(upstream_app("new"), port):
            fronts.nginx("credit").point("green")
            assert httpx.post(f"{front}/predict").text == "new POST /predict"


def test_an_older_record_gets_two_slots_of_its_own():
    front = Front.model_validate({"model": "credit", "port": 20000})
    assert sorted(front.slots) == ["blue", "green"]
    assert len({20000, *front.slots.values()}) == 3
