"""The embedded server replays a change Prefect refused as busy (503), and only that; on SQLite
its writes take turns (`sqlite_writes`) so that SQLite refuses none."""

from __future__ import annotations

import asyncio
import contextlib

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


@pytest.fixture
def sqlite_db(monkeypatch, tmp_path):
    """Prefect's SQLite configuration on a file (a write waits 1 s at most for SQLite's lock),
    its methods as they were restored afterwards."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    for patched in ("begin_transaction", "engine", "setup_sqlite"):
        monkeypatch.setattr(
            AioSqliteConfiguration, patched, getattr(AioSqliteConfiguration, patched)
        )
    busy_retry.cap_sqlite_busy_wait(wait_ms=1000)
    return AioSqliteConfiguration(f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}")


@contextlib.asynccontextmanager
async def transaction(configuration, engine):
    """A session in a transaction, begun as Prefect begins one (`begin_transaction`)."""
    session = await configuration.session(engine)
    async with session, configuration.begin_transaction(session):
        yield session


async def _engine(configuration):
    import sqlalchemy as sa

    engine = await configuration.engine()
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t (x INTEGER NOT NULL)"))
    return engine


def two_writers(configuration) -> list[BaseException | None]:
    """Two transactions that read, then write, interleaved as the API's are under load: the
    second writes and commits while the first holds what it read (or waits its turn)."""
    import sqlalchemy as sa

    count, insert = sa.text("SELECT count(*) FROM t"), sa.text("INSERT INTO t VALUES (1)")

    async def go():
        engine = await _engine(configuration)
        first_read, second_done = asyncio.Event(), asyncio.Event()

        async def first():
            async with transaction(configuration, engine) as session:
                await session.execute(count)
                first_read.set()
                try:  # the second writes meanwhile, unless it waits for this one
                    await asyncio.wait_for(second_done.wait(), 0.5)
                except TimeoutError:
                    pass
                await session.execute(insert)

        async def second():
            await first_read.wait()
            try:
                async with transaction(configuration, engine) as session:
                    await session.execute(count)
                    await session.execute(insert)
            finally:
                second_done.set()

        try:
            return await asyncio.gather(first(), second(), return_exceptions=True)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_two_sqlite_writers_in_one_server_are_refused_busy_without_turns(sqlite_db):
    outcomes = two_writers(sqlite_db)
    assert outcomes[1] is None
    assert "database is locked" in str(outcomes[0])


def test_two_sqlite_writers_in_one_server_take_turns_and_both_write(sqlite_db):
    from fearless.platform.sqlite_writes import serialize_sqlite_writes

    serialize_sqlite_writes()
    serialize_sqlite_writes()  # twice: wrapped once
    assert two_writers(sqlite_db) == [None, None]


def test_a_transaction_nested_in_a_turn_and_a_read_do_not_wait_for_the_turn(sqlite_db):
    import sqlalchemy as sa

    from fearless.platform.sqlite_writes import serialize_sqlite_writes

    serialize_sqlite_writes(wait_s=60)

    async def go():
        engine = await _engine(sqlite_db)
        try:
            async with transaction(sqlite_db, engine) as outer:
                await outer.execute(sa.text("INSERT INTO t VALUES (1)"))
                async with transaction(sqlite_db, engine) as inner:
                    nested = await inner.execute(sa.text("SELECT count(*) FROM t"))
                async with await sqlite_db.session(engine) as reader:
                    read = await reader.execute(sa.text("SELECT count(*) FROM t"))
                return nested.scalar(), read.scalar()
        finally:
            await engine.dispose()

    # Neither sees the outer insert (uncommitted), and neither waits a minute for its turn.
    assert asyncio.run(asyncio.wait_for(go(), 10)) == (0, 0)


def test_a_transaction_waits_for_its_turn_a_bounded_time_then_goes_on(sqlite_db):
    import time

    import sqlalchemy as sa

    from fearless.platform import sqlite_writes

    sqlite_writes.serialize_sqlite_writes(wait_s=0.3)

    async def go():
        engine = await _engine(sqlite_db)
        await sqlite_writes._lock().acquire()  # a turn never given back
        started = time.monotonic()
        try:
            async with transaction(sqlite_db, engine) as session:
                await session.execute(sa.text("INSERT INTO t VALUES (1)"))
            return time.monotonic() - started
        finally:
            await engine.dispose()

    assert 0.3 <= asyncio.run(go()) < 5


def test_a_write_outside_a_transaction_waits_for_its_turn_and_gives_it_back(sqlite_db):
    """Prefect writes logs and events in sessions without a transaction, a statement at a time:
    such a write waits its turn (not SQLite's busy timeout, 1 s here), and a failed one gives
    its turn back."""
    import sqlalchemy as sa

    from fearless.platform.sqlite_writes import serialize_sqlite_writes

    serialize_sqlite_writes(wait_s=60)
    insert = sa.text("INSERT INTO t VALUES (1)")

    async def go():
        engine = await _engine(sqlite_db)
        holding = asyncio.Event()

        async def long_transaction():
            async with transaction(sqlite_db, engine) as session:
                await session.execute(insert)
                holding.set()
                await asyncio.sleep(1.5)

        async def write_without_transaction():
            await holding.wait()
            async with await sqlite_db.session(engine) as session:
                await session.execute(insert)
                with pytest.raises(sa.exc.IntegrityError):
                    await session.execute(sa.text("INSERT INTO t VALUES (NULL)"))
                await session.commit()

        try:
            await asyncio.gather(long_transaction(), write_without_transaction())
            async with transaction(sqlite_db, engine) as session:  # the turns were given back
                return (await session.execute(sa.text("SELECT count(*) FROM t"))).scalar()
        finally:
            await engine.dispose()

    assert asyncio.run(asyncio.wait_for(go(), 10)) == 2
