"""The Locust test a release runs against a candidate's model API.

Each user posts batches of records, taken in turn from a JSONL traffic file, to `/predict`.
In the open model (a `rate`) every user keeps its own schedule from the start of the run,
one request per `users / rate` seconds of the stage it is in, its phase a share of that
spread evenly over the users, so arrivals are even and keep coming whatever the API's pace (a
late user sends at once to catch up); users only cap what is in flight, and no request is
sent past the run's end, so what went out is what the profile asks unless the API (or the
generator) held it back. In the closed model each user sends as fast as it is answered. The
load over time follows the profile table in `profiles.py`.

With FEARLESS_REPLAY_SPEED set (1 = real time, 2 = twice as fast), the traffic is a replayed
log: each body is sent at its recorded offset (from the `.offsets.json` beside the traffic
file) divided by the speed, so users only cap the concurrency, they do not set the pace.

Configured through the environment, as `fearless.loadtest.runner` sets it:
FEARLESS_TRAFFIC (JSONL path), FEARLESS_BATCH_SIZE, FEARLESS_MODE, FEARLESS_RATE,
FEARLESS_PROFILE, FEARLESS_USERS, FEARLESS_SPAWN_RATE, FEARLESS_DURATION_S,
FEARLESS_REPLAY_SPEED and FEARLESS_LATENCY_PATH (optional).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path

from gevent import sleep
from locust import LoadTestShape, User, events, task
from locust.runners import WorkerRunner

from simulations.api_client import ApiClient
from simulations.latency import UNIT_MS, latency_bucket
from simulations.profiles import next_due, profile_from_env, stage_at, stages_for
from simulations.replay import ReplayClock, batch_offsets, read_offsets


def load_bodies(path: Path, batch_size: int) -> list[bytes]:
    """Request bodies, encoded once up front so the generator spends its CPU on requests.

    Batches are consecutive records; the last one wraps to the start, so every record is sent.
    """
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{path}: no traffic records")
    batches = math.ceil(len(records) / batch_size)
    ring = itertools.cycle(records)
    return [
        json.dumps({"records": list(itertools.islice(ring, batch_size))}).encode()
        for _ in range(batches)
    ]


def _traffic_path() -> Path:
    if not os.environ.get("FEARLESS_TRAFFIC"):
        raise RuntimeError("set FEARLESS_TRAFFIC to a JSONL file of records to send")
    return Path(os.environ["FEARLESS_TRAFFIC"])


def _replay_clock(traffic: Path, batch_size: int) -> ReplayClock | None:
    speed = os.environ.get("FEARLESS_REPLAY_SPEED")
    if not speed:
        return None
    offsets = read_offsets(traffic.with_suffix(".offsets.json"))
    return ReplayClock(batch_offsets(offsets, batch_size), float(speed))


# Read at import so a missing or empty traffic file stops Locust before the test starts.
LOAD = profile_from_env()
STAGES = stages_for(LOAD)
BODIES = load_bodies(_traffic_path(), LOAD.batch_size)
CLOCK = _replay_clock(_traffic_path(), LOAD.batch_size)
PACED = LOAD.target_rate is not None and CLOCK is None  # a replay keeps its recorded pace
_next_body = itertools.cycle(BODIES).__next__
_started: list[float] = []
_test_start: list[float] = []
_user_numbers = itertools.count()
JSON_HEADERS = {"Content-Type": "application/json"}


def _run_time() -> float:
    if not _test_start:
        _test_start.append(time.monotonic())
    return time.monotonic() - _test_start[0]


def _paced_body() -> bytes:
    """The next body of a timed replay, once it is due (late slots go at once)."""
    index, due_s = CLOCK.next()
    if not _started:
        _started.append(time.monotonic())
    delay = due_s - (time.monotonic() - _started[0])
    if delay > 0:
        sleep(delay)
    return BODIES[index]


# Every request's latency to 1% or finer (Locust keeps whole milliseconds), written at the end
# to FEARLESS_LATENCY_PATH when set, as {"unit_ms": UNIT_MS, "counts": {bucket: n}}.
_latency_counts: dict[int, int] = {}


@events.request.add_listener
def _record_latency(response_time: float, **_kwargs) -> None:
    bucket = latency_bucket(response_time)
    _latency_counts[bucket] = _latency_counts.get(bucket, 0) + 1


@events.quitting.add_listener
def _write_latency(environment, **_kwargs) -> None:
    path = os.environ.get("FEARLESS_LATENCY_PATH")
    if path and not isinstance(environment.runner, WorkerRunner):  # workers: no histogram
        Path(path).write_text(json.dumps({"unit_ms": UNIT_MS, "counts": _latency_counts}))


class ModelApiUser(User):
    """Posts to the model API over a connection of its own (`ApiClient`: a fraction of
    FastHttpUser's cost per request, so the generator stays clear of the API it measures)."""

    def on_start(self) -> None:
        self.client = ApiClient(self.host, self.environment.events.request)
        self._due: float | None = None
        if PACED:  # phases spread evenly, so the users' requests do not arrive together
            _run_time()
            phase = next(_user_numbers) % LOAD.concurrency / LOAD.concurrency
            self._due = next_due(STAGES, 0.0, share=phase) if phase else 0.0
            sleep(self._until_due())

    def on_stop(self) -> None:
        self.client.close()

    def _until_due(self) -> float:
        """Seconds until this user's next request; none is sent past the run's end, so the
        requests sent are the table's (Locust stops the run up to a second later)."""
        if self._due >= LOAD.duration_s:
            return 3600.0
        return max(0.0, self._due - _run_time())

    def wait_time(self) -> float:
        if self._due is None:
            return 0.0
        self._due = next_due(STAGES, self._due)
        return self._until_due()

    @task
    def predict(self) -> None:
        body = _next_body() if CLOCK is None else _paced_body()
        self.client.post("/predict", body, JSON_HEADERS)  # a failure goes to the statistics


class ProfileShape(LoadTestShape):
    """Plays the stage table of the profile given in FEARLESS_PROFILE and friends."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = stages_for(profile_from_env())

    def tick(self) -> tuple[int, float] | None:
        stage = stage_at(self.stages, self.get_run_time())
        return None if stage is None else (stage.users, stage.spawn_rate)
