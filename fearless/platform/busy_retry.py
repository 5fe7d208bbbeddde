"""The embedded server retries a change that SQLite refused as busy, so a browser never sees it.

On SQLite, Prefect answers 503 when a write meets another one (SQLITE_BUSY_SNAPSHOT in WAL mode
is raised at once, whatever the busy timeout): the transaction was rolled back, and its own
Python client simply asks again. The Prefect UI does not: a person's Resume in the approval form
failed with an error toast that vanished after a few seconds, and the release kept waiting.
Prefect has no server-side retry, so this ASGI middleware replays such a request, a few times
with a short backoff, before any of its answer leaves; every other answer streams through.
Its automations meet the same refusal: `retry_automation_triggers_when_busy`. No write waits
more than SQLITE_BUSY_WAIT_MS for the lock (`cap_sqlite_busy_wait`), and every transaction
takes the lock when it begins (`begin_sqlite_writes_immediately`), which leaves the refusals
above to writes that waited out that limit: none in a storm of 40 releases.
"""

from __future__ import annotations

import asyncio

ATTEMPTS = 6
FIRST_BACKOFF_S = 0.05
MAX_BODY_BYTES = 1024 * 1024  # larger bodies pass through once, unbuffered
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


class BusyRetry:
    """Replays a change answered 503 (busy, rolled back) up to ATTEMPTS times."""

    def __init__(self, app, attempts: int = ATTEMPTS) -> None:
        self.app = app
        self.attempts = attempts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            return await self.app(scope, receive, send)
        body, more = await _read_body(receive)
        if more:  # too large to keep: once, as it comes
            return await self.app(scope, _replay(body, receive), send)
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            if await _answered(self.app, scope, body, receive, send, hold_busy=not last):
                return
            await asyncio.sleep(FIRST_BACKOFF_S * 2**attempt)


async def _read_body(receive) -> tuple[bytes, bool]:
    """The request body, up to MAX_BODY_BYTES; True when more is left unread."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False):
            return b"".join(chunks), False
        if size > MAX_BODY_BYTES:
            return b"".join(chunks), True


def _replay(body: bytes, receive):
    """A receive that gives `body` first, then whatever `receive` still has."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answered(app, scope, body, receive, send, *, hold_busy: bool) -> bool:
    """Run the app once on the buffered body. A 503 is swallowed when `hold_busy` (returns
    False, to try again); any other answer goes to the client as it comes (returns True)."""
    busy = False

    async def relay(message):
        nonlocal busy
        if message["type"] == "http.response.start" and message["status"] == 503 and hold_busy:
            busy = True
        if not busy:
            await send(message)

    try:
        # A fresh copy each time: routers write into the scope (a Mount's root_path, the route).
        await app(dict(scope), _replay(body, receive), relay)
    except Exception:
        # Starlette raises the error again once its handler has answered (the 503 held back
        # here): for a busy answer that is the retry's business, for any other the server's.
        if not busy:
            raise
    return not busy


TRIGGER_ATTEMPTS = 10
TRIGGER_FIRST_BACKOFF_S = 0.1


def busy_error(exc: BaseException) -> bool:
    """Whether `exc` is SQLite refusing a write as busy (the transaction rolled back)."""
    return "database is locked" in str(exc) or "database is busy" in str(exc)


def retried_when_busy(evaluate, attempts: int = TRIGGER_ATTEMPTS):
    """`evaluate` (an async function) run again, with backoff, while SQLite answers busy."""
    import functools

    from prefect.logging import get_logger

    logger = get_logger("fearless.busy_retry")  # Prefect's server logs only its own loggers

    @functools.wraps(evaluate)
    async def evaluate_until_not_busy(*args, **kwargs):
        for attempt in range(attempts):
            try:
                return await evaluate(*args, **kwargs)
            except Exception as exc:
                if attempt == attempts - 1 or not busy_error(exc):
                    raise
                logger.warning("automation trigger busy (attempt %d): evaluated again", attempt + 1)
            await asyncio.sleep(TRIGGER_FIRST_BACKOFF_S * 2 ** min(attempt, 5))

    return evaluate_until_not_busy


def retry_automation_triggers_when_busy() -> None:
    """Prefect's automations drop an event SQLite refused as busy three times in a row.

    Its triggers service evaluates each event against the automations in a write transaction;
    under load, SQLite refuses it at once (SQLITE_BUSY_SNAPSHOT), and Prefect's in-memory
    broker retries the event only three times, with no pause, before it moves it to its dead
    letter folder: the automation never fires. A release whose approval timed out was then
    never cleaned up. Here each evaluation is tried again with backoff, for up to ~10 s.
    """
    from prefect.server.events import triggers

    if not getattr(triggers.reactive_evaluation, "__wrapped__", None):
        triggers.reactive_evaluation = retried_when_busy(triggers.reactive_evaluation)


# How long a SQLite write waits for the lock before it is refused as busy (Prefect: 60 s).
SQLITE_BUSY_WAIT_MS = 5000


def cap_sqlite_busy_wait(wait_ms: int = SQLITE_BUSY_WAIT_MS) -> None:
    """A write waits at most `wait_ms` for SQLite's lock, not Prefect's 60 s.

    Measured on the fault tests: the server's own services (the docket tasks that mark a
    polled work pool ready, the event persister, the task-run recorder) and the API's state
    changes met in a knot that only the busy timeout undid, so every write to the server stood
    still for 60 s at a time, several times in one release that lost its worker (the release
    took 5 minutes instead of 1, and a worker's submission crashed the release it was taking).
    A refused write loses nothing here: the API answers it 503, which this module's middleware
    and Prefect's clients ask again, and the services keep a refused batch to write again.
    """
    import functools

    from prefect.server.database.configurations import AioSqliteConfiguration

    original = AioSqliteConfiguration.setup_sqlite
    if getattr(original, "__wrapped__", None):
        return

    @functools.wraps(original)
    def setup_sqlite(self, conn, record) -> None:
        original(self, conn, record)
        cursor = conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(wait_ms)};")
        cursor.close()

    AioSqliteConfiguration.setup_sqlite = setup_sqlite


def begin_sqlite_writes_immediately() -> None:
    """Every SQLite transaction Prefect begins takes the write lock at BEGIN (IMMEDIATE).

    Prefect begins most of its write transactions DEFERRED: they read, then write, and in WAL
    mode a transaction whose snapshot another writer has moved past is refused at that first
    write (SQLITE_BUSY_SNAPSHOT), at once, whatever the busy timeout; that was most of a storm's
    "database is locked" answers. Begun IMMEDIATE, a transaction waits for the lock (at most
    the busy timeout above) before it reads, so its snapshot is current when it writes. Reads
    outside a transaction, most of the API's, still run beside it.
    """
    import functools

    from prefect.server.database.configurations import AioSqliteConfiguration

    original = AioSqliteConfiguration.begin_transaction
    if getattr(original, "fearless_immediate", False):  # (it has a __wrapped__ of its own)
        return

    @functools.wraps(original)
    def begin_transaction(self, session, with_for_update: bool = False):
        return original(self, session, with_for_update=True)

    begin_transaction.fearless_immediate = True
    AioSqliteConfiguration.begin_transaction = begin_transaction
