"""Adaptive micro-batching: concurrent requests are scored by one predict call.

Scoring one record costs about as much as scoring a hundred (most of a scikit-learn call is
fixed overhead), so requests that arrive while a batch is being scored wait for the next one
and share its call. A lone request is never held back: the batcher waits (at most `max_wait_s`)
only for requests the server has already started receiving.

A batch is scored on the event loop itself, not in a worker thread. Scoring is Python and NumPy
holding the GIL (an inference runtime releases it only inside its own call), so a worker
thread could not run beside the loop anyway: each time one of them needed the GIL back it
waited out the other's switch interval (5 ms), which capped a fast model at a few hundred
batches a second and kept batches small. While a batch is scored, the requests arriving
wait in the socket buffers and are read together right after, into the next batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Job:
    """One request's records, and the future its handler awaits."""

    request_id: str
    records: list[dict[str, Any]]
    future: asyncio.Future = field(repr=False)


class ScoringError(ValueError):
    """The model could not score these records (the request's fault, not the server's)."""


@dataclass(frozen=True)
class BatchOptions:
    max_records: int = 256
    max_wait_s: float = 0.002


class MicroBatcher:
    """Collects jobs on the event loop and runs `score(jobs)` for each batch on it.

    `score` returns one result per job in order, or raises; on an error the batch is retried
    one job at a time, so a bad request fails alone and the others are still answered.
    """

    def __init__(self, score: Callable[[list[Job]], list[Any]], options: BatchOptions) -> None:
        self.score = score
        self.options = options
        self.receiving = 0  # requests in a handler that have not submitted a job yet
        self._jobs: deque[Job] = deque()
        self._wakeup: asyncio.Future | None = None  # what the collector awaits, when it waits
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, request_id: str, records: list[dict[str, Any]]) -> Any:
        """Queue the records for the next batch and wait for their result."""
        assert self._task is not None, "batcher not started"
        job = Job(request_id, records, asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return await job.future

    async def _arrival(self, timeout_s: float | None) -> None:
        """Until a job is submitted (or `timeout_s` has passed)."""
        loop = asyncio.get_running_loop()
        self._wakeup = wakeup = loop.create_future()
        expiry = None if timeout_s is None else loop.call_later(timeout_s, _expire, wakeup)
        try:
            await wakeup
        finally:
            self._wakeup = None
            if expiry is not None:
                expiry.cancel()

    async def _collect(self) -> list[Job]:
        jobs, limit = self._jobs, self.options.max_records
        while not jobs:
            await self._arrival(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_wait_s
        await asyncio.sleep(0)  # let requests already read off their sockets reach the queue
        batch: list[Job] = []
        size = 0
        while True:
            while jobs and size < limit:
                job = jobs.popleft()
                batch.append(job)
                size += len(job.records)
            remaining = deadline - loop.time()
            if size >= limit or self.receiving <= 0 or remaining <= 0:
                return batch
            await self._arrival(remaining)

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            try:
                results = self.score(batch)
            except Exception as exc:  # noqa: BLE001 - settled per job below
                if len(batch) == 1:
                    _settle(batch[0], exception=exc)
                    continue
                for job in batch:
                    try:
                        [result] = self.score([job])
                    except Exception as one:  # noqa: BLE001 - the job's own failure
                        _settle(job, exception=one)
                    else:
                        _settle(job, result=result)
                continue
            for job, result in zip(batch, results, strict=True):
                _settle(job, result=result)


def _expire(wakeup: asyncio.Future) -> None:
    if not wakeup.done():
        wakeup.set_result(None)


def _settle(job: Job, result: Any = None, exception: BaseException | None = None) -> None:
    if job.future.done():  # its client went away and the handler was cancelled
        return
    if exception is not None:
        job.future.set_exception(exception)
    else:
        job.future.set_result(result)
