"""The embedded server replays a change Prefect refused as busy (503), and only that."""

from __future__ import annotations

import asyncio

import httpx
import pytest
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


def test_a_trigger_evaluation_refused_as_busy_runs_again_and_other_errors_pass(monkeypatch):
    import sqlalchemy as sa

    monkeypatch.setattr(busy_retry, "TRIGGER_FIRST_BACKOFF_S", 0.001)
    calls: list[str] = []

    def evaluation(errors: list[Exception]):
        async def evaluate(event: str) -> str:
            calls.append(event)
            if errors:
                raise errors.pop(0)
            return f"evaluated {event}"

        return busy_retry.retried_when_busy(evaluate, attempts=4)

    locked = sa.exc.OperationalError(
        "UPDATE automation_bucket", {}, Exception("database is locked")
    )
    assert asyncio.run(evaluation([locked, locked])("e1")) == "evaluated e1"
    assert calls == ["e1"] * 3
    calls.clear()
    with pytest.raises(sa.exc.OperationalError):  # busy for good: the broker's retry next
        asyncio.run(evaluation([locked] * 4)("e2"))
    assert calls == ["e2"] * 4
    calls.clear()
    broken = sa.exc.OperationalError("SELECT", {}, Exception("no such table: automation"))
    with pytest.raises(sa.exc.OperationalError) as raised:
        asyncio.run(evaluation([broken])("e3"))
    assert raised.value is broken
    assert calls == ["e3"]  # not a busy error: no second try


def test_the_server_wraps_prefects_trigger_evaluation_once():
    from prefect.server.events import triggers

    original = triggers.reactive_evaluation
    try:
        busy_retry.retry_automation_triggers_when_busy()
        busy_retry.retry_automation_triggers_when_busy()
        assert triggers.reactive_evaluation.__wrapped__ is original
    finally:
        triggers.reactive_evaluation = original


def test_a_sqlite_write_waits_for_the_lock_seconds_not_a_minute(monkeypatch, tmp_path):
    """Prefect sets SQLite's busy timeout to 60 s; the embedded server caps it, and a second
    writer is refused within the cap instead of standing still for a minute."""
    import sqlite3
    import time

    from prefect.server.database.configurations import AioSqliteConfiguration

    monkeypatch.setattr(AioSqliteConfiguration, "setup_sqlite", AioSqliteConfiguration.setup_sqlite)
    busy_retry.cap_sqlite_busy_wait(wait_ms=300)
    busy_retry.cap_sqlite_busy_wait(wait_ms=300)  # twice: wrapped once
    configuration = AioSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    holder, waiter = (sqlite3.connect(tmp_path / "p.db", isolation_level=None) for _ in "ab")
    for conn in (holder, waiter):
        configuration.setup_sqlite(conn, None)
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 300
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        waiter.execute("INSERT INTO t VALUES (1)")
    assert time.monotonic() - started < 5
    holder.execute("ROLLBACK")


@pytest.mark.parametrize("immediate", [False, True], ids=["prefects-own", "immediate"])
def test_a_prefect_transaction_on_sqlite_holds_the_write_lock_from_its_begin(
    monkeypatch, tmp_path, immediate
):
    """Begun DEFERRED, a transaction that has only read holds no lock, and its first write is
    refused at once if another writer went first; begun IMMEDIATE (every one, here), the other
    writer is the one that waits."""
    import sqlite3

    from prefect.server.database.configurations import AioSqliteConfiguration

    monkeypatch.setattr(
        AioSqliteConfiguration, "begin_transaction", AioSqliteConfiguration.begin_transaction
    )
    if immediate:
        busy_retry.begin_sqlite_writes_immediately()
    path = tmp_path / "p.db"
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    other.execute("PRAGMA journal_mode = WAL")
    other.execute("CREATE TABLE t (x)")
    configuration = AioSqliteConfiguration(f"sqlite+aiosqlite:///{path}")

    async def read_in_a_transaction_while_another_writes() -> None:
        import sqlalchemy as sa

        engine = await configuration.engine()
        session = await configuration.session(engine)
        try:
            async with configuration.begin_transaction(session, with_for_update=False):
                await session.execute(sa.text("SELECT count(*) FROM t"))
                if not immediate:  # Prefect's own DEFERRED: the other writer goes first
                    other.execute("INSERT INTO t VALUES (1)")
                    with pytest.raises(sa.exc.OperationalError, match="locked"):
                        await session.execute(sa.text("INSERT INTO t VALUES (3)"))
                    return
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute("INSERT INTO t VALUES (1)")
        finally:
            await session.close()
            await engine.dispose()

    asyncio.run(read_in_a_transaction_while_another_writes())
    other.execute("INSERT INTO t VALUES (2)")  # once it ended, the lock is free again
    assert other.execute("SELECT x FROM t").fetchall() == ([(2,)] if immediate else [(1,), (2,)])
