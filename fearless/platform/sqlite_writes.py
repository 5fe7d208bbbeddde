"""On SQLite the embedded server queues its write transactions itself, one at a time, instead of
letting SQLite refuse them as busy.

SQLite lets one connection write at a time. Prefect begins a transaction DEFERRED unless it
asks `with_for_update`, and in WAL mode a deferred transaction that has read and then writes
while another holds the lock, or has committed since, is refused at once (SQLITE_BUSY, or
SQLITE_BUSY_SNAPSHOT), whatever the busy timeout: the storm bench logged ~1,300 "database is
locked" in 40 releases, each an API answer 503 asked again or a service's batch written again.
The writers that did wait for SQLite's lock held one of the pool's 15 connections while they
polled for it, so the API's reads queued behind them for up to the busy timeout (p99 5.3 s).

Here each transaction Prefect opens with `begin_transaction` (how Prefect says "this writes";
its reads run without one) first waits its turn on an asyncio lock of the server's event loop,
in order and before it takes a connection, then begins IMMEDIATE: it holds SQLite's lock from
its first statement, so nothing can be written between its reads and its writes. Prefect also
writes outside transactions, one statement at a time (logs, events, task runs, heartbeats):
such a statement takes its turn too, just before it runs (`_write_statements_take_turns`),
or SQLite's polling for its lock lost to the queue of turns past the busy timeout.

Why this cannot hang the server:
- A transaction or a statement run while the lock is held in the same context (a nested
  session, or a task started from inside a transaction, which inherits the context) does not
  wait for it: it runs as Prefect has it run, as it did before.
- No wait is longer than LOCK_WAIT_S: a write still waiting then goes on without the lock (a
  transaction begins IMMEDIATE, so SQLite's busy timeout bounds it) and a warning says so.
- The lock is given back when the transaction ends, however it ends (commit, error,
  cancellation); a statement's turn when the statement ends, or at the latest when its
  connection goes back to the pool. It lives in one process and one event loop: Prefect's
  other processes and loops write as before, through SQLite's own lock.
"""

from __future__ import annotations

import asyncio
import functools
import re
import weakref
from contextlib import asynccontextmanager
from contextvars import ContextVar

LOCK_WAIT_S = 20.0
WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
TURN = "fearless_write_turn"  # in a pooled connection's info: the turn its statement holds

_held: ContextVar[bool] = ContextVar("fearless_sqlite_write_turn", default=False)
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
_engines: weakref.WeakSet = weakref.WeakSet()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    if loop not in _locks:
        _locks[loop] = asyncio.Lock()
    return _locks[loop]


async def _take_turn(lock: asyncio.Lock, wait_s: float) -> bool:
    """True once `lock` is ours; False after `wait_s` without it (nothing then to release:
    a cancelled `Lock.acquire` never leaves the lock taken), and the write goes on without."""
    try:
        async with asyncio.timeout(wait_s):
            await lock.acquire()
    except TimeoutError:
        from prefect.logging import get_logger  # Prefect's server logs only its own loggers

        get_logger("fearless.sqlite_writes").warning(
            "no write turn after %.0f s: the write goes on without it", wait_s
        )
        return False
    return True


def serialize_sqlite_writes(wait_s: float | None = None) -> None:
    """Prefect's SQLite transactions wait their turn in this process, then begin IMMEDIATE."""
    from prefect.server.database.configurations import SQLITE_BEGIN_MODE, AioSqliteConfiguration

    original = AioSqliteConfiguration.begin_transaction
    if getattr(original, "fearless_turns", False):
        return

    @functools.wraps(original)
    @asynccontextmanager
    async def begin_transaction(self, session, with_for_update: bool = False):
        if _held.get():  # nested in a transaction of ours: waiting here would wait for itself
            async with original(self, session, with_for_update=with_for_update) as transaction:
                yield transaction
            return
        lock = _lock()
        limit = LOCK_WAIT_S if wait_s is None else wait_s
        ours = await _take_turn(lock, limit)
        held, mode = _held.set(True), SQLITE_BEGIN_MODE.set("IMMEDIATE")
        try:
            async with session.begin() as transaction:
                # BEGIN IMMEDIATE now, on this session's connection only: a session opened
                # inside begins as Prefect has it begin, or a read there would wait for the
                # lock this transaction holds.
                await session.connection()
                SQLITE_BEGIN_MODE.set("IMMEDIATE" if with_for_update else "DEFERRED")
                yield transaction
        finally:
            SQLITE_BEGIN_MODE.reset(mode)
            _held.reset(held)
            if ours:
                lock.release()

    original_engine = AioSqliteConfiguration.engine

    @functools.wraps(original_engine)
    async def engine(self):
        engine = await original_engine(self)
        _write_statements_take_turns(engine.sync_engine, wait_s)
        return engine

    begin_transaction.fearless_turns = True
    AioSqliteConfiguration.begin_transaction = begin_transaction
    AioSqliteConfiguration.engine = engine


def _write_statements_take_turns(engine, wait_s: float | None) -> None:
    """A write statement outside a transaction (Prefect's sessions without one run each
    statement on its own, autocommitted) takes a turn just before it runs, and gives it back
    once it has run: with SQLAlchemy's asyncio engine, its events run in a greenlet that can
    wait on the event loop."""
    from prefect.server.database.configurations import SQLITE_BEGIN_MODE
    from sqlalchemy import event
    from sqlalchemy.util.concurrency import await_only, in_greenlet

    if engine in _engines:  # Prefect keeps one engine per event loop and hands it out again
        return
    _engines.add(engine)

    @event.listens_for(engine, "before_cursor_execute")
    def take_turn(conn, cursor, statement, parameters, context, executemany) -> None:
        if _held.get() or SQLITE_BEGIN_MODE.get() is not None or TURN in conn.info:
            return  # in a transaction (its own turn, or one begun before it), or has its turn
        if not WRITES.match(statement) or not in_greenlet():
            return
        lock = _lock()
        if await_only(_take_turn(lock, LOCK_WAIT_S if wait_s is None else wait_s)):
            conn.info[TURN] = lock

    @event.listens_for(engine, "after_cursor_execute")
    def statement_ran(conn, *args) -> None:
        _give_back(conn.info)

    @event.listens_for(engine, "handle_error")
    def statement_failed(context) -> None:
        if context.connection is not None:
            _give_back(context.connection.info)

    @event.listens_for(engine.pool, "checkin")
    def connection_returned(dbapi_connection, record) -> None:
        if record is not None:
            _give_back(record.info)


def _give_back(info: dict) -> None:
    lock = info.pop(TURN, None)
    if lock is not None and lock.locked():
        lock.release()
